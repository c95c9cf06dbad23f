#!/usr/bin/env bash
# Runs every test of the project: static checks, the Rust unit and golden tests, then each suite in
# tests/suites/ (real clients, QEMU installs). Installs what it needs when run as root.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib/deps.sh
need_cargo || exit 1
# The Rust tests read real tools too: sfdisk checks the GPT, gpg and gpgv the keyrings.
need_pkgs build-essential pkg-config fdisk gnupg gpgv shellcheck || exit 1

passed=0 failed=0 failures=() skipped=()
# A step passes, fails, or (status 77: a suite whose prerequisite's output is missing) is skipped; a
# skip is reported and fails the run, as the run did not show what the suite checks.
step() {
    local name=$1 rc=0; shift
    echo "=== $name"
    "$@" || rc=$?
    case $rc in
        0) passed=$((passed + 1)) ;;
        77) skipped+=("$name") ;;
        *) failed=$((failed + 1)); failures+=("$name") ;;
    esac
}

step fmt cargo fmt --all -- --check
# Every script of the repo, with the settings of .shellcheckrc.
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
step shellcheck shellcheck -x "${scripts[@]}"
step clippy cargo clippy --workspace --all-targets --release -- -D warnings
step cargo-test cargo test --workspace --release
for suite in tests/suites/*.sh; do
    [ -e "$suite" ] || continue
    step "$(basename "$suite" .sh)" bash "$suite"
done

[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
[ ${#skipped[@]} -eq 0 ] || echo "skipped: ${skipped[*]}"
echo "suites: $passed passed, $failed failed, ${#skipped[@]} skipped"
[ "$failed" -eq 0 ] && [ ${#skipped[@]} -eq 0 ]
