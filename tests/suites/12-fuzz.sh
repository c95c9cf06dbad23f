#!/usr/bin/env bash
# Fuzzes every reader of untrusted input (fuzz/: ISO images, APT and RPM metadata, answer files, guest
# definitions, request paths, Range headers) for FUZZ_SECONDS each (default 10: a smoke run within CI's time; longer by hand), from the seeds in
# fuzz/corpus/TARGET; FUZZ_TARGETS="a b" runs only those. CI has only the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's -Z flags
# (sanitizer, coverage) through. A crash, a panic, a hang (FUZZ_TIMEOUT s for one input) or an allocation
# over the RSS limit fails the suite and names the reproducer. The instrumented build (8-10 min cold on
# two cores, mostly xenprov-repo's dependencies) and the corpus each run grows are kept in
# /var/cache/xenprov/fuzz (FUZZ_CACHE), keyed by cargo's own fingerprints, so that later runs start from
# where this one ended.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_cargo
# libfuzzer-sys compiles libFuzzer (C++) with the system compiler.
need_pkgs build-essential

toolchain=${FUZZ_TOOLCHAIN:-stable}
seconds=${FUZZ_SECONDS:-10}
timeout=${FUZZ_TIMEOUT:-10}
cargo_fuzz_version=0.13.2
export RUSTC_BOOTSTRAP=1
cache=${FUZZ_CACHE:-/var/cache/xenprov/fuzz}
mkdir -p "$cache"
target_dir=(--target-dir "$cache/target")

# cargo install does nothing when this version is already in ~/.cargo/bin; built once, it stays there.
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    echo "installing cargo-fuzz $cargo_fuzz_version"
    cargo "+$toolchain" install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

cd fuzz
start=$SECONDS
cargo "+$toolchain" fuzz build "${target_dir[@]}"
echo "--- built the fuzz targets in $((SECONDS - start)) s"

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
failed=()
for t in ${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}; do
    corpus=$cache/corpus/$t
    mkdir -p "$corpus" "artifacts/$t"
    seeds=()
    [ -d "corpus/$t" ] && seeds=("corpus/$t")
    # A target's dictionary is TARGET.dict, or the one of its family (apt.dict for apt_release).
    dict=()
    for d in "$t.dict" "${t%%_*}.dict"; do
        [ -f "$d" ] && { dict=("-dict=$d"); break; }
    done
    touch "$log/$t.start"
    # New inputs go to the first corpus directory; the committed seeds are only read.
    if cargo "+$toolchain" fuzz run "${target_dir[@]}" "$t" "$corpus" "${seeds[@]}" -- "${dict[@]}" \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log/$t" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log/$t")
        cov=$(grep -o 'cov: [0-9]*' "$log/$t" | tail -n 1)
        echo "ok: $t: $runs runs, $cov, corpus $(find "$corpus" -type f | wc -l) inputs"
    else
        failed+=("$t")
        echo "FAIL: $t" >&2
        # The panic first: the input's Debug dump after it can push it out of the tail.
        grep -m 1 -A 4 -e 'panicked at' -e '^==[0-9]*==ERROR' -e 'ALARM:' "$log/$t" >&2 || true
        tail -n 40 "$log/$t" >&2
        found=$(find "$PWD/artifacts/$t" -type f -newer "$log/$t.start")
        if [ -n "$found" ]; then
            echo "reproducer (rerun with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo +$toolchain fuzz run $t FILE):" >&2
            echo "$found" >&2
        else
            echo "no reproducer written: the target did not get to fuzzing (its output is above)" >&2
        fi
    fi
done
echo "--- fuzzing took $((SECONDS - start)) s with the build"
[ ${#failed[@]} -eq 0 ] || { echo "FAIL: fuzz targets that failed: ${failed[*]}" >&2; exit 1; }
