#!/usr/bin/env bash
# Runs every test of the project: static checks, the Rust unit and golden tests, then each suite in
# tests/suites/ (real clients, QEMU installs). Installs what it needs when run as root.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib/deps.sh
need_cargo || exit 1
# The Rust tests read real tools too: sfdisk checks the GPT, gpg and gpgv the keyrings.
need_pkgs build-essential pkg-config fdisk gnupg gpgv || exit 1

passed=0 failed=0 failures=()
step() {
    local name=$1; shift
    echo "=== $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --release -- -D warnings
step cargo-test cargo test --workspace --release
for suite in tests/suites/*.sh; do
    [ -e "$suite" ] || continue
    step "$(basename "$suite" .sh)" bash "$suite"
done

[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
