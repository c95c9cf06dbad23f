#!/usr/bin/env bash
# Guest definitions and templates, judged by the real validators: every definition in
# tests/guests/ is rendered by `xenprov-guest render` into its kickstart (ksvalidator, for the
# OS's version) or preseed (debconf-set-selections -c), its xl configs, and its libvirt XML
# (virt-xml-validate). A refused definition fails the command with its message (each one's exact
# error is a Rust golden test). Rendering must touch nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_pkgs debconf-utils libvirt-clients libxml2-utils
command -v ksvalidator >/dev/null || python3 -m pip install --quiet pykickstart
cargo build -q --release -p xenprov-guest
bin=$PWD/target/release/xenprov-guest

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A config whose registry and xl directories must stay untouched by render.
cat >"$work/guests.toml" <<CFG
repo-url = "http://192.0.2.1:8080"
[paths]
registry = "$work/registry"
xen = "$work/xen"
auto = "$work/xen/auto"
CFG
render() { "$bin" --config "$work/guests.toml" render "$@"; }

passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }

for def in tests/guests/*.toml; do
    g=$(basename "$def" .toml)
    os=$(sed -n 's/^os = "\(.*\)"/\1/p' "$def")
    if [ "$os" = debian12 ]; then
        render --from "$def" preseed >"$work/$g.preseed"
        if debconf-set-selections -c "$work/$g.preseed"; then ok; else bad "$g: preseed"; fi
    else
        ver=$(sed -n 's/^ksversion = "\(.*\)"/\1/p' "kickstarts/os/$os.toml")
        render --from "$def" kickstart >"$work/$g.ks"
        if ksvalidator -v "$ver" "$work/$g.ks" >"$work/ks.out" 2>&1; then ok; else cat "$work/ks.out"; bad "$g: kickstart ($ver)"; fi
    fi
    for phase in install run; do
        render --from "$def" libvirt --phase $phase >"$work/$g.$phase.xml"
        if virt-xml-validate "$work/$g.$phase.xml" domain >/dev/null 2>&1; then ok; else bad "$g: libvirt $phase"; fi
        render --from "$def" xl --phase $phase >"$work/$g.$phase.cfg"
        # xl's own parser is not here; check the config's shape instead.
        if grep -q "^name = \"$g\"$" "$work/$g.$phase.cfg" && ! grep -q '{{\|}}' "$work/$g.$phase.cfg"; then ok; else bad "$g: xl $phase"; fi
    done
done

# Each refused definition's exact error is a Rust golden test (guests/tests/golden.rs); here, the
# binary: a refused definition exits 3 (invalid input) with its message on stderr and nothing on stdout.
refused=(tests/guests/refused/*.toml)
def=${refused[0]}
want=$(sed -n 's/^# expect: //p' "$def")
rc=0
render --from "$def" xl >"$work/out" 2>"$work/err" || rc=$?
if [ "$rc" -eq 0 ]; then bad "$def was accepted"
elif [ "$rc" -ne 3 ]; then bad "$def: status $rc, not 3 (invalid input)"
elif [ -s "$work/out" ]; then bad "$def: a refusal printed a config"
elif grep -qF -- "$want" "$work/err"; then ok; else cat "$work/err" >&2; bad "$def: expected: $want"; fi

if [ -e "$work/registry" ] || [ -e "$work/xen" ]; then bad "render wrote files"; else ok; fi
out=$(render --from tests/guests/deb-pv.toml kickstart 2>&1) && bad "a kickstart for a Debian guest was rendered"
if grep -q "installed from a preseed" <<<"$out"; then ok; else bad "kickstart of a Debian guest: $out"; fi

echo "60-guests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
