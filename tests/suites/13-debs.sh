#!/usr/bin/env bash
# The Debian packages that `xenprov-image debs` builds: dpkg installs each into a scratch root, which then
# knows every file (`dpkg -S`) and holds the settings as conffiles; man renders each binary's page and each
# verb's, bash completes a verb from the packaged completion, the packaged binaries run, and lintian finds
# no error. (The scratch root has no C library, so dpkg is told to ignore dependencies: it checks them
# against an empty database.)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_pkgs dpkg man-db bash-completion binutils lintian python3-jsonschema

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
packages=(xenprov-repo xenprov-guest xenprov-install xenprov-image)

cargo build --release -q "${packages[@]/#/--package=}"
out=out/debs
rm -rf "$out"
target/release/xenprov-image debs --out-dir "$out"
for p in "${packages[@]}"; do
    [ -f "$out/${p}_0.1.0_amd64.deb" ] || fail "no package $p in $out"
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
# --path-include: a minimized image's dpkg.cfg.d may exclude /usr/share/man and /usr/share/doc.
dpkg --root="$root" --force-depends --path-include='/usr/share/*' -i "$out"/*.deb >"$root/dpkg.log" 2>&1 || {
    cat "$root/dpkg.log" >&2
    fail "dpkg -i"
}
admin=(--admindir="$root/var/lib/dpkg")

# dpkg owns every file, and nothing else is in the packages.
for p in "${packages[@]}"; do
    [ "$(dpkg-query "${admin[@]}" -W -f='${Status}' "$p")" = "install ok installed" ] || fail "$p is not installed"
    [ "$(dpkg --root="$root" -S "/usr/sbin/$p")" = "$p: /usr/sbin/$p" ] || fail "dpkg -S /usr/sbin/$p"
    owners=$(dpkg-deb -c "$out/${p}_0.1.0_amd64.deb" | awk '{print $2}' | sort -u)
    [ "$owners" = root/root ] || fail "$p has files not owned by root: $owners"
    outside=$(dpkg-deb -c "$out/${p}_0.1.0_amd64.deb" | awk '{print $6}' |
        grep -vE '^\./(|(etc|usr|usr/lib|usr/lib/systemd|usr/share)/|(usr/(sbin|share/(man|doc|bash-completion|zsh|lintian)|lib/systemd/system)|etc/xenprov)(/.*)?)$' || true)
    [ -z "$outside" ] || fail "$p installs outside its directories: $outside"
    "$root/usr/sbin/$p" --version >/dev/null || fail "the packaged $p does not run"
done
pass "dpkg installs all four packages and owns their files (dpkg -S /usr/sbin/xenprov-repo)"

for f in repo.toml:xenprov-repo guests.toml:xenprov-guest; do
    conffiles=$(dpkg-query "${admin[@]}" -W -f='${Conffiles}' "${f#*:}")
    grep -q "/etc/xenprov/${f%%:*} [0-9a-f]\{32\}" <<<"$conffiles" || fail "${f#*:}: /etc/xenprov/${f%%:*} is not a conffile: $conffiles"
done
[ -f "$root/usr/lib/systemd/system/xenprov-repo.service" ] || fail "no unit in /usr/lib/systemd/system"
pass "settings are conffiles; the repo server's unit is in /usr/lib/systemd/system"

# The packaged repo.toml is valid by `xenprov-repo schema`, as a JSON Schema validator reads it; a key the
# server refuses, the schema refuses too.
"$root/usr/sbin/xenprov-repo" schema >"$root/repo.schema.json"
validate() {
    /usr/bin/python3 -c '
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.validate(tomllib.load(open(sys.argv[2], "rb")), schema)' "$root/repo.schema.json" "$1"
}
validate "$root/etc/xenprov/repo.toml" || fail "the packaged repo.toml does not match xenprov-repo schema"
"$root/usr/sbin/xenprov-repo" list --config "$root/etc/xenprov/repo.toml" >/dev/null ||
    fail "xenprov-repo refuses its packaged repo.toml"
{ cat "$root/etc/xenprov/repo.toml"; printf '[[iso]]\nname = "x"\npath = "/x.iso"\nsize = "8M"\n'; } >"$root/bad.toml"
if validate "$root/bad.toml" 2>/dev/null; then fail "the schema takes [[iso]] size, which the server refuses"; fi
got=$("$root/usr/sbin/xenprov-repo" list --config "$root/bad.toml" 2>&1) && fail "xenprov-repo takes [[iso]] size"
grep -q 'size' <<<"$got" || fail "xenprov-repo's error does not name the key: $got"
pass "the packaged repo.toml matches xenprov-repo schema (python3-jsonschema); [[iso]] size is refused by both"

# man finds and renders the pages; the unit's Documentation= names one of them.
export MANPATH=$root/usr/share/man
man -P cat xenprov-repo 2>/dev/null | grep -q 'xenprov-repo-serve' || fail "man xenprov-repo lists no serve verb"
man -P cat xenprov-repo-serve 2>/dev/null | grep -q -- '--guests' || fail "man xenprov-repo-serve has no --guests"
man -P cat xenprov-guest-new 2>/dev/null | grep -q -- '--vg' || fail "man xenprov-guest-new has no --vg"
man -P cat xenprov-install 2>/dev/null | grep -qE 'Exit +status: +0 +done' || fail "man xenprov-install lists no exit statuses"
grep -q '^Documentation=man:xenprov-repo(8)$' "$root/usr/lib/systemd/system/xenprov-repo.service" ||
    fail "the unit does not point at man:xenprov-repo(8)"
man -w xenprov-repo | grep -q "man8/xenprov-repo.8.gz" || fail "xenprov-repo's page is not in section 8"
if man -w xenprov-guest-docs >/dev/null 2>&1; then fail "the hidden docs verb has a man page"; fi
pass "man renders every binary's and verb's page, in section 8"
unset MANPATH

# bash completes a verb from the packaged script, as bash-completion would load it.
got=$(bash -c '
    . /usr/share/bash-completion/bash_completion
    . "$1/usr/share/bash-completion/completions/xenprov-guest"
    COMP_WORDS=(xenprov-guest ne) COMP_CWORD=1 COMP_LINE="xenprov-guest ne" COMP_POINT=16
    fn=$(complete -p xenprov-guest | sed -n "s/.*-F \([^ ]*\).*/\1/p")
    "$fn" xenprov-guest ne xenprov-guest
    printf "%s\n" "${COMPREPLY[@]}"' _ "$root")
grep -qx new <<<"$got" || fail "bash completes \"xenprov-guest ne\" to: $got"
head -n 1 "$root/usr/share/zsh/vendor-completions/_xenprov-repo" | grep -q '^#compdef xenprov-repo' ||
    fail "no zsh completion for xenprov-repo"
pass "bash completes xenprov-guest's verbs; zsh has its completion"

# lintian, the Debian archive's own check. Tags it reports as errors fail the suite; warnings are shown.
lintian --fail-on error --tag-display-limit 0 "$out"/*.deb || fail "lintian reports errors"
pass "lintian: no errors"
echo "13-debs: PASS"
