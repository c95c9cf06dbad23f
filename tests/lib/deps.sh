# shellcheck shell=bash
# Sourced by the test and build scripts: install Debian packages only when they are missing.
# Usage: need_pkgs pkg [pkg...]
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        return 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}"
    }
}

# The crate toolchain is not a Debian package; say so plainly instead of failing later.
need_cargo() {
    command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)" >&2; return 1; }
}

# needs_suite SUITE DIR FILE...: a suite that runs on another suite's output skips (status 77, which
# tests/run-all.sh reports as skipped, never as passed) with a message naming what is missing.
needs_suite() {
    local suite=$1 dir=$2 f
    shift 2
    for f in "$@"; do
        if [ ! -e "$dir/$f" ]; then
            echo "skipped: needs the output of $suite ($dir/$f is missing; run bash tests/suites/$suite.sh first)" >&2
            exit 77
        fi
    done
}
