# shellcheck shell=bash
# Sourced by the end-to-end scripts: named, timed stages that a rerun can start from, and failing.
#   stages_init PREFIX FROM   PREFIX names the script in its output; FROM (may be empty) is the stage to
#                             start at, the ones before it skipped (a rerun on an earlier run's artefacts)
#   stage NAME FUNCTION [ARGS...]   runs it unless skipped, and times it
#   stages_report FILE        prints the timings and writes them to FILE
#   fail MESSAGE              says PREFIX: FAIL: MESSAGE and exits 1
stages_init() {
    STAGE_PREFIX=$1
    STAGE_FROM=$2
    STAGE_TIMINGS=()
}
stage() {
    local name=$1 start=$SECONDS
    shift
    if [ -n "$STAGE_FROM" ] && [ "$name" != "$STAGE_FROM" ]; then
        echo "=== $STAGE_PREFIX: $name: skipped"
        return
    fi
    STAGE_FROM=
    echo "=== $STAGE_PREFIX: $name"
    "$@"
    STAGE_TIMINGS+=("$(printf '%-18s %5d s' "$name" $((SECONDS - start)))")
    echo "=== $STAGE_PREFIX: $name: $((SECONDS - start)) s"
}
stages_report() {
    printf '%s\n' "${STAGE_TIMINGS[@]}" | tee "$1"
}
fail() {
    echo "$STAGE_PREFIX: FAIL: $*" >&2
    exit 1
}
