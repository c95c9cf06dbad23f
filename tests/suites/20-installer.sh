#!/usr/bin/env bash
# The installer's command line against real tools on this host: validate and plan on recorded
# inventories, hash-password checked by openssl and Python, guided mode driven through a real
# terminal (tmux), and apply on a disk image: refused without wipe (image untouched), and a real
# failure part-way (this host has no udev nor device-mapper) leaving the image blank.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
. tests/lib/images.sh
need_pkgs tmux openssl fdisk lvm2 e2fsprogs dosfstools zstd util-linux

cargo build --release -q -p xenprov-install
bin=$PWD/target/release/xenprov-install
fixtures=core/tests/fixtures
work=$(mktemp -d)
loops=()
cleanup() {
    tmux kill-session -t xenprov-guided 2>/dev/null || true
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# The exit status of a command (0 when it succeeds), without tripping set -e.
status_of() { local rc=0; "$@" || rc=$?; echo "$rc"; }

# --- validate: every problem at once, with line and column; exit status says which
"$bin" validate core/tests/plans/vm-minimal.toml >/dev/null || fail "a valid answer was refused"
rc=$(status_of "$bin" validate core/tests/plans/bad-answer.toml 2>"$work/bad.txt")
[ "$rc" -eq 3 ] || fail "a bad answer: status $rc, not 3 (invalid input)"
rc=$(status_of "$bin" validate 2>/dev/null)
[ "$rc" -eq 2 ] || fail "validate without a file: status $rc, not 2 (usage)"
"$bin" --help | grep -q '^Exit status: 0 done; 1 failed; 2 usage error; 3 invalid input' || fail "--help lists no exit statuses"
# shellcheck disable=SC2016 # backquotes of the message, not a command
grep -q 'bad-answer.toml:22:1: xen.dom0_mem: unknown key; did you mean `dom0-mem`?' "$work/bad.txt" || fail "no did-you-mean"
[ "$(grep -c '^core/tests/plans/bad-answer.toml:[0-9]*:[0-9]*: ' "$work/bad.txt")" -eq 23 ] || fail "not all 23 problems reported"
"$bin" validate --json core/tests/plans/bad-syntax.toml >"$work/bad.json" && fail "broken TOML accepted"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["valid"] and d["errors"][0]["line"]==3, d' "$work/bad.json"
"$bin" schema | python3 -c 'import json,sys; s=json.load(sys.stdin); assert "xen" in s["properties"], s["properties"].keys()'
pass "validate and schema"

# --- plan: the same bytes twice; refusals name the key
"$bin" plan --answer core/tests/plans/design-example.toml --inventory $fixtures/server-4kn.json \
    --payload $fixtures --json >"$work/p1.json"
"$bin" plan --answer core/tests/plans/design-example.toml --inventory $fixtures/server-4kn.json \
    --payload $fixtures --json >"$work/p2.json"
cmp -s "$work/p1.json" "$work/p2.json" || fail "plan is not deterministic"
rc=$(status_of "$bin" plan --answer core/tests/plans/err-match-many.toml --inventory $fixtures/server-4kn.json 2>"$work/many.txt")
[ "$rc" -eq 4 ] || fail "an ambiguous match: status $rc, not 4 (refused)"
grep -q "2 disks match, exactly one must" "$work/many.txt" || fail "ambiguous match not explained"
pass "plan"

# --- hash-password: $6$ checked by openssl, GRUB PBKDF2 recomputed by Python
h=$(printf 'correct horse\n' | "$bin" hash-password)
[ "$(echo "$h" | cut -d'$' -f2-3)" = "6\$rounds=5000" ] || fail "unexpected hash form $h"
salt=$(echo "$h" | cut -d'$' -f4)
[ "$(openssl passwd -6 -salt "$salt" 'correct horse' | cut -d'$' -f4)" = "$(echo "$h" | cut -d'$' -f5)" ] \
    || fail "openssl does not agree with the \$6\$ hash $h"
g=$(printf 'correct horse\n' | "$bin" hash-password --grub)
python3 - "$g" <<'PY'
import hashlib, sys
_, _, alg, rounds, salt, want = sys.argv[1].split(".")
got = hashlib.pbkdf2_hmac("sha512", b"correct horse", bytes.fromhex(salt), int(rounds)).hex().upper()
assert alg == "sha512" and got == want, (got, want)
PY
pass "hash-password"

# --- guided mode in a real terminal
cat >"$work/guided.sh" <<SH
#!/bin/sh
TERM=xterm-256color "$bin" guided --inventory $fixtures/vm-20g.json --save "$work/guided.toml" --no-install
echo "EXIT=\$?" > "$work/guided.exit"
sleep 30
SH
chmod +x "$work/guided.sh"
tmux new-session -d -s xenprov-guided -x 160 -y 40 "$work/guided.sh"
screen_has() {
    for _ in $(seq 1 100); do
        tmux capture-pane -p -t xenprov-guided | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    tmux capture-pane -p -t xenprov-guided >&2
    fail "guided mode never showed: $1"
}
answer() { screen_has "$1"; shift; tmux send-keys -t xenprov-guided "$@"; sleep 0.2; }
answer "Disk to install on" Enter
answer "Boot firmware" Down Enter
answer "Volume group name" Enter
answer "Size of / " Enter
answer "Size of /var" BSpace BSpace 3G Enter
answer "Size of /tmp" Enter
answer "Size of /home" Enter
answer "Size of swap" Enter
answer "dom0 memory" BSpace BSpace BSpace BSpace BSpace 1024M Enter
answer "dom0 vCPUs" Enter
answer "Serial console" Enter
answer "Serial speed" Enter
answer "Network interface" Enter
answer "Address" Enter
answer "Host name" BSpace BSpace BSpace BSpace tmuxhost Enter
answer "Root password" 'pw one' Enter
answer "Again" 'pw one' Enter
answer "Admin user" ops Enter
answer "Same password for ops" Enter
answer "SSH public key" Enter
answer "Protect GRUB" Enter
answer "Run the repo server" Enter
for _ in $(seq 1 50); do [ -s "$work/guided.exit" ] && break; sleep 0.1; done
grep -q "EXIT=0" "$work/guided.exit" || { tmux capture-pane -p -t xenprov-guided >&2; fail "guided mode failed"; }
"$bin" validate "$work/guided.toml" >/dev/null || fail "guided mode saved an invalid answer file"
python3 - "$work/guided.toml" <<'PY'
import sys, tomllib
a = tomllib.load(open(sys.argv[1], "rb"))
assert a["disk"]["target"] == "/dev/vda", a["disk"]
assert a["boot"]["firmware"] == "uefi", a["boot"]
assert [v["size"] for v in a["lvm"]["volumes"]] == ["6G", "3G", "512M", "512M", "1G"], a["lvm"]
assert a["xen"]["dom0-mem"] == "1G", a["xen"]
assert a["system"]["hostname"] == "tmuxhost" and a["system"]["admin-user"] == "ops", a["system"]
assert a["system"]["root-password-hash"].startswith("$6$"), a["system"]
assert "pw one" not in open(sys.argv[1]).read()
PY
pass "guided mode through tmux"

# --- apply on disk images
payload="$work/payload"
tiny_payload "$payload"
answer_for() {
    image_answer "$1" "$2" '[{ name = "root", mount = "/", size = "1G" }, { name = "swap", fs = "swap", size = "256M" }]'
}

# A disk image holding data, without wipe: refused before anything is written.
img=$work/data.img
truncate -s 3G "$img"
printf 'label: gpt\n,1G,L\n' | sfdisk -q "$img"
before=$(sha256sum "$img" | cut -d' ' -f1)
answer_for "$img" "" >"$work/nowipe.toml"
rc=$(status_of "$bin" apply --yes --answer "$work/nowipe.toml" --payload "$payload" 2>"$work/nowipe.txt")
[ "$rc" -eq 4 ] || fail "apply on a disk with data: status $rc, not 4 (refused)"
grep -q "holds data" "$work/nowipe.txt" || fail "refusal does not say why: $(cat "$work/nowipe.txt")"
[ "$(sha256sum "$img" | cut -d' ' -f1)" = "$before" ] || fail "a refused apply changed the image"
pass "apply refuses a disk with data without wipe, and writes nothing"

# With wipe, apply writes the GPT and then fails on this host (no udev to make partition nodes, no
# device-mapper for LVM):
# the install must stop, say so, and leave the image blank rather than half-installed.
answer_for "$img" "wipe = true" >"$work/wipe.toml"
rc=$(status_of "$bin" apply --yes --answer "$work/wipe.toml" --payload "$payload" --progress plain 2>"$work/fail.txt")
if [ "$rc" -eq 0 ]; then
    echo "note: lvcreate worked here; apply completed" >&2
else
    [ "$rc" -eq 1 ] || fail "a failed install: status $rc, not 1 (failed)"
    grep -q "install failed" "$work/fail.txt" || fail "no failure message: $(tail -5 "$work/fail.txt")"
    grep -q "left blank" "$work/fail.txt" || fail "the image was not blanked: $(tail -5 "$work/fail.txt")"
    if sfdisk -d "$img" >/dev/null 2>&1; then fail "a partition table survived the failed install"; fi
    [ -z "$(blkid -p "$img" 2>/dev/null)" ] || fail "signatures survived the failed install: $(blkid -p "$img")"
    pass "a failed apply leaves the image blank, with the reason: $(grep -m1 'install failed' "$work/fail.txt" | cut -c1-120)"
fi
vgremove -f dsk >/dev/null 2>&1 || true
