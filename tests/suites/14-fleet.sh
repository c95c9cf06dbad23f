#!/usr/bin/env bash
# Fleet installs through the real server and its `hosts` verbs, with curl standing in for iPXE and for
# the installer (the QEMU netboot of whole hosts is still to come): host entries sharing one answer
# template, a broken entry reported with its file, line and column, an unknown MAC sent to its disk,
# an install run once (answer pinned by SHA-256, events driving the state), `hosts arm` for a second
# one, and no token in the access log. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_cargo
need_pkgs curl xorriso jq
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo

. tests/lib/servers.sh # scratch_init, fail, step, server_address, log_has
scratch_init

hosts=$T/hosts
mkdir -p "$hosts/answers" "$T/iso/boot" "$T/root"
cp core/tests/fleet/rack.toml "$hosts/answers/rack.toml"
entry() { printf 'answer = "answers/rack.toml"\n[match]\nmac = "%s"\n[vars]\naddress = "%s"\n' "$1" "$2"; }
entry 52-54-00-AC-01-01 198.51.100.11/24 >"$hosts/rack-a1.toml"
entry 52:54:00:ac:01:02 198.51.100.12/24 >"$hosts/rack-a2.toml"
printf 'answer = "answers/rack.toml"\n[match]\nmac = "52:54:00:ac:01:03"\nserail = "X"\n' >"$hosts/rack-a3.toml"
head -c 100000 /dev/urandom >"$T/iso/boot/vmlinuz"
head -c 50000 /dev/urandom >"$T/iso/boot/initrd.img"
xorriso -as mkisofs -quiet -R -o "$T/installer.iso" "$T/iso"
args=(--hosts "$hosts" --hosts-state "$T/state")

step "hosts --check names the broken entry by file, line and column"
rc=0
"$bin" hosts --check "${args[@]}" >"$T/check.out" 2>"$T/check.err" || rc=$?
[ "$rc" = 3 ] || fail "hosts --check with a broken entry: status $rc, not 3"
grep -q "rack-a3.toml:4:1: match.serail: unknown key; did you mean \`serial\`?" "$T/check.err" ||
    fail "hosts --check: no file:line:column for the broken entry: $(cat "$T/check.err")"
grep -Eq '^rack-a3 +broken' "$T/check.out" || fail "hosts: rack-a3 is not listed as broken"
rm "$hosts/rack-a3.toml"
"$bin" hosts --check "${args[@]}" >/dev/null 2>&1 || fail "hosts --check fails on sound entries"
"$bin" hosts answer rack-a2 "${args[@]}" | grep -q 'hostname = "rack-a2"' || fail "hosts answer: not rack-a2's answer"

"$bin" serve --root "$T/root" --listen 127.0.0.1:0 --iso "installer=$T/installer.iso" "${args[@]}" \
    2>"$T/server.log" &
pids+=("$!")
server_address "$!"
ipxe() { curl -sf "$base/ipxe?mac=$1&uuid=&serial="; }

step "/boot.ipxe chains to /ipxe; an unknown machine boots its disk"
# shellcheck disable=SC2016 # iPXE's variables, literally
curl -sf "$base/boot.ipxe" | grep -q '^chain /ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid}&' || fail "/boot.ipxe does not chain to /ipxe"
ipxe 52%3A54%3A00%3Aac%3A01%3A99 | grep -qx exit || fail "an unknown MAC is not sent to its disk"

step "an armed host installs with its own answer, once"
script=$(ipxe 52%3A54%3A00%3Aac%3A01%3A01)
kernel=$(awk '$1 == "kernel" { print $2 }' <<<"$script")
initrd=$(awk '$1 == "initrd" { print $2 }' <<<"$script")
answer=$(grep -o 'xenprov\.answer=[^ ]*' <<<"$script" | cut -d= -f2)
sha=$(grep -o 'xenprov\.answer-sha256=[^ ]*' <<<"$script" | cut -d= -f2)
[ -n "$answer" ] && [ -n "$sha" ] || fail "no answer URL or SHA-256 on the kernel line: $script"
cmp -s <(curl -sf "$kernel") "$T/iso/boot/vmlinuz" || fail "the kernel is not the ISO's"
cmp -s <(curl -sf "$initrd") "$T/iso/boot/initrd.img" || fail "the initrd is not the ISO's"
curl -sf "$answer" >"$T/answer.toml" || fail "the answer URL does not answer"
[ "$(sha256sum <"$T/answer.toml" | cut -d' ' -f1)" = "$sha" ] || fail "the answer's SHA-256 is not the script's"
grep -q 'hostname = "rack-a1"' "$T/answer.toml" && grep -q '198.51.100.11/24' "$T/answer.toml" ||
    fail "the answer is not rack-a1's"
token=${answer##*/}
events=$(grep -o 'xenprov\.events=[^ ]*' <<<"$script" | cut -d= -f2)
[ "$events" = "$base/events/host/rack-a1/$token" ] || fail "the kernel line does not say where to post events: $script"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "done" "$base/events/host/rack-a1/0000")" = 404 ] ||
    fail "an event with a wrong token is not 404"
[ "$(curl -sf -X POST --data-binary started "$events")" = installing ] || fail "started: not installing"
[ "$(curl -sf -X POST --data-binary "done" "$events")" = installed ] || fail "done: not installed"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$answer")" = 404 ] || fail "the answer is served after done"
ipxe 52:54:00:ac:01:01 | grep -qx exit || fail "an installed host is not sent to its disk"
[ "$("$bin" hosts --json "${args[@]}" | jq -r '.[] | select(.name == "rack-a1") | "\(.state) \(.last_event)"')" = \
    "installed done" ] || fail "hosts --json: rack-a1 is not installed"

step "hosts arm installs it again, with a new token"
"$bin" hosts arm rack-a1 "${args[@]}" | grep -q armed || fail "hosts arm said nothing"
again=$(ipxe 52:54:00:ac:01:01 | grep -o 'xenprov\.answer=[^ ]*' | cut -d= -f2)
[ -n "$again" ] && [ "$again" != "$answer" ] || fail "a re-armed host is not offered a new install"

step "the access log names the host, never the token"
log_has "path=/answer/rack-a1/- status=200" || fail "no access line for the answer fetch"
log_has "path=/events/host/rack-a1/- status=200" || fail "no access line for the events"
grep -q "$token" "$T/server.log" && fail "the token is in the server's log"
echo "fleet: PASS"
