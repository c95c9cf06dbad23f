#!/usr/bin/env bash
# A fleet install over the network end to end (issue #14), with the ISO of tests/e2e/install.sh served
# in place by a real repo server on this machine's loopback: QEMU hosts with blank disks boot from their
# NIC only (QEMU's iPXE ROM, user-mode networking whose DHCP hands out bootfile=/boot.ipxe on 10.0.2.2).
#   install-bios   host rack-bios (SeaBIOS) chains /boot.ipxe -> /ipxe, boots the ISO's kernel and
#                  initrd, which fetch the live root over HTTP and check it; installs with its own
#                  rendered answer, reports started and done, reboots (after-install)
#   boot-bios      its next network boot is sent to its disk (iPXE exit), which comes up into Xen with
#                  its name and address on the console
#   unknown        a machine no entry names is sent to its disk
#   install-uefi   host rack-uefi the same under OVMF (iPXE's EFI driver); the installer reads back
#                  an NVRAM boot order with the installed disk first
#   boot-uefi      its next boot (the NVRAM its install left) netboots too and is sent to its disk
#   rearm          `hosts arm rack-bios`: its next network boot installs again, to the end, with a
#                  new answer token
#   no-token       no token the hosts were given is in the server's log
# The access log must name the hosts and never hold a token. Timings go to OUT/timings.txt, the
# network install's against the ISO install of out/e2e/timings.txt. Settings: XENPROV_E2E_OUT (where the
# ISO is, out/e2e), XENPROV_NETBOOT_OUT (out/netboot), XENPROV_NETBOOT_FROM=STAGE (rerun from there).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
. tests/lib/qemu.sh
. tests/lib/servers.sh # server_address; stages.sh's fail, sourced after, is the one used here
. tests/lib/stages.sh

E2E=${XENPROV_E2E_OUT:-out/e2e}
ISO=$E2E/xenprov.iso
OUT=${XENPROV_NETBOOT_OUT:-out/netboot}
BIN=target/release/xenprov-repo
need_pkgs qemu-system-x86 ovmf ipxe-qemu curl jq
stages_init netboot "${XENPROV_NETBOOT_FROM:-}"

# The server on loopback (QEMU's user-mode network reaches it as 10.0.2.2); its state and its log.
HOSTS=$OUT/hosts
STATE=$OUT/state
SERVER_LOG=$OUT/server.log
HOST_ARGS=(--hosts "$HOSTS" --hosts-state "$STATE")
SERVER_PID=
cleanup() {
    qemu_stop_all
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    return 0
}
trap cleanup EXIT

entry() { printf 'answer = "answers/rack.toml"\n[match]\nmac = "%s"\n[vars]\naddress = "%s"\n' "$1" "$2"; }
MAC_BIOS=52:54:00:ac:01:01
MAC_UEFI=52:54:00:ac:01:02
MAC_UNKNOWN=52:54:00:ac:01:99

setup() {
    rm -rf "$HOSTS" "$STATE" "$OUT/root"
    mkdir -p "$HOSTS/answers" "$OUT/root"
    cp tests/e2e/netboot-answer.toml "$HOSTS/answers/rack.toml"
    # Spellings as an operator might paste them: hyphens and upper case for one.
    entry "$MAC_BIOS" 10.0.2.21/24 >"$HOSTS/rack-bios.toml"
    entry "$(tr a-f: A-F- <<<"$MAC_UEFI")" 10.0.2.22/24 >"$HOSTS/rack-uefi.toml"
    "$BIN" hosts --check "${HOST_ARGS[@]}" || fail "the host entries do not check"
    "$BIN" hosts answer rack-uefi "${HOST_ARGS[@]}" | grep -q '^address = "10.0.2.22/24"' ||
        fail "rack-uefi's answer does not carry its address"
}

start_server() {
    : >"$SERVER_LOG"
    "$BIN" serve --root "$OUT/root" --listen 127.0.0.1:0 --iso "xenprov=$ISO" "${HOST_ARGS[@]}" \
        2>>"$SERVER_LOG" &
    SERVER_PID=$!
    server_address "$SERVER_PID" "$SERVER_LOG"
    BOOTFILE=http://10.0.2.2:$port/boot.ipxe
}

# The server's word on host $1: its state, or with $2 another field of `hosts --json` (last_event).
state_of() { "$BIN" hosts --json "${HOST_ARGS[@]}" | jq -r --arg n "$1" --arg f "${2:-state}" '.[] | select(.name == $n) | .[$f]'; }

# A host booting from its NIC first (iPXE), its disk second. NAME FIRMWARE MAC [DISK]
netboot_vm() {
    local name=$1 firmware=$2 mac=$3 disk=${4:-} args=()
    [ -n "$disk" ] && mapfile -t args < <(qemu_disk "$disk" XPTARGET0 bootindex=1)
    QEMU_MEM=2560 qemu_start "$name" "$firmware" "$OUT/$name.serial.log" "${args[@]}" \
        -netdev "user,id=n0,bootfile=$BOOTFILE" -device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=0"
}

# Waits for host $1's VM to reboot (an exit, under -no-reboot) after its install, failing at once on a `failed` event.
await_install() {
    local vm=$1 host=$2 start=$SECONDS
    while qemu_running "$vm"; do
        [ "$(state_of "$host")" = failed ] && fail "$host reported failed: see $OUT/$vm.serial.log and $STATE"
        ((SECONDS - start < 1800)) || fail "$host: its install did not end within 30 min"
        sleep 2
    done
    qemu_wait_exit "$vm" 5
    local log=$OUT/$vm.serial.log
    grep -aq 'live/root.squashfs: OK' "$log" || fail "$host: the initrd did not check the fetched live root"
    grep -aq 'xenprov-live: ready, medium http://10.0.2.2:' "$log" || fail "$host: the live system's medium is not the server"
    grep -aq 'xenprov: install complete; rebooting' "$log" || fail "$host: no 'xenprov: install complete; rebooting' in $log"
    [ "$(state_of "$host")" = installed ] || fail "$host: the server does not say installed (says $(state_of "$host"))"
}

# Boots host $1's VM again: the server sends it to its disk (iPXE exit), which must come up into Xen as
# that host. VM HOST FIRMWARE MAC ADDRESS; QEMU_OVMF_VARS for a UEFI host's NVRAM.
await_disk_boot() {
    local vm=$1 host=$2 firmware=$3 mac=$4 address=$5 log=$OUT/$1.serial.log sent before
    sent="fleet: host $host .* is installed: it boots its next device"
    before=$(grep -c "$sent" "$SERVER_LOG" || true)
    netboot_vm "$vm" "$firmware" "$mac" "$OUT/$host.img"
    qemu_wait_log "$vm" '\(XEN\) Command line:' 900 || fail "$host: Xen did not start from its disk"
    [ "$(grep -c "$sent" "$SERVER_LOG")" -gt "$before" ] || fail "$host: the server did not send it to its disk"
    grep -a -m1 '(XEN) Command line:' "$log" | grep -q 'dom0_mem=700M' || fail "$host: Xen lacks its dom0_mem"
    qemu_wait_log "$vm" "$host login:" 900 || fail "$host: no login prompt with its hostname"
    grep -aq "http://${address%/*}:8080/" "$log" || fail "$host: its address ${address%/*} is not on its console"
    qemu_stop "$vm"
    [ "$(state_of "$host")" = installed ] || fail "$host: no longer installed after booting its disk"
}

install_bios() {
    rm -f "$OUT/rack-bios.img"
    truncate -s 16G "$OUT/rack-bios.img"
    netboot_vm install-bios bios "$MAC_BIOS" "$OUT/rack-bios.img"
    await_install install-bios rack-bios
}

boot_bios() { await_disk_boot boot-bios rack-bios bios "$MAC_BIOS" 10.0.2.21/24; }

unknown() {
    netboot_vm unknown bios "$MAC_UNKNOWN"
    local start=$SECONDS
    until grep -q "fleet: no host entry matches .*$MAC_UNKNOWN.*; it boots its next device" "$SERVER_LOG"; do
        ((SECONDS - start < 300)) || fail "the unknown machine was not sent to its next device"
        sleep 1
    done
    qemu_stop unknown
    grep -q "/answer/" <(grep "$MAC_UNKNOWN" "$SERVER_LOG") && fail "the unknown machine got an answer"
    return 0
}

install_uefi() {
    rm -f "$OUT/rack-uefi.img"
    truncate -s 16G "$OUT/rack-uefi.img"
    netboot_vm install-uefi uefi "$MAC_UEFI" "$OUT/rack-uefi.img"
    await_install install-uefi rack-uefi
    grep -aq 'next boot: Boot[0-9A-F]\{4\} "debian", the installed disk' "$OUT/install-uefi.serial.log" ||
        fail "rack-uefi: the installer did not read back an NVRAM boot order with its disk first"
}

# Its next boot with the NVRAM its install left: the firmware still tries the NIC first (QEMU's boot
# order), and the server sends it on to the disk.
boot_uefi() { QEMU_OVMF_VARS=$OUT/install-uefi.serial.OVMF_VARS.fd await_disk_boot boot-uefi rack-uefi uefi "$MAC_UEFI" 10.0.2.22/24; }

# The answer token on a host's console (its kernel's command line), from serial log $1.
token_on() { { grep -ao 'answer/[a-z-]*/[0-9a-f]\{32\}' "$1" || true; } | awk -F/ 'NR == 1 { print $3 }'; }

rearm() {
    local answers first again start
    answers=$(grep -c 'path=/answer/rack-bios/- status=200' "$SERVER_LOG" || true)
    "$BIN" hosts arm rack-bios "${HOST_ARGS[@]}" | grep -q armed || fail "hosts arm rack-bios said nothing"
    [ "$(state_of rack-bios)" = armed ] || fail "hosts arm rack-bios left it $(state_of rack-bios)"
    netboot_vm rearm bios "$MAC_BIOS" "$OUT/rack-bios.img"
    await_install rearm rack-bios
    first=$(token_on "$OUT/install-bios.serial.log")
    again=$(token_on "$OUT/rearm.serial.log")
    [ -n "$again" ] || fail "no answer URL on the re-armed rack-bios's console"
    [ "$again" != "$first" ] || fail "the re-armed rack-bios was given its first install's token again"
    # The server writes an access line as its response ends; give it a moment.
    start=$SECONDS
    until [ "$(grep -c 'path=/answer/rack-bios/- status=200' "$SERVER_LOG")" -gt "$answers" ]; do
        ((SECONDS - start < 10)) || fail "no access line for the re-armed rack-bios's answer (had $answers): see $SERVER_LOG"
        sleep 1
    done
}

no_token_logged() {
    local t n=0
    # Every token the hosts were given, as their kernels printed their command lines.
    while read -r t; do
        n=$((n + 1))
        grep -q "$t" "$SERVER_LOG" && fail "an install token is in the server's log"
    done < <(for log in "$OUT"/*.serial.log; do token_on "$log"; done | sort -u)
    [ "$n" -ge 3 ] || fail "only $n install tokens on the hosts' consoles; expected one per install (3)"
    grep -q 'path=/answer/rack-uefi/- status=200' "$SERVER_LOG" || fail "no access line names rack-uefi's answer"
}

[ -n "$STAGE_FROM" ] || rm -rf "$OUT"
mkdir -p "$OUT"
[ -s "$ISO" ] || fail "no ISO at $ISO (tests/e2e/install.sh builds it)"
stage setup setup
start_server
stage install-bios install_bios
stage boot-bios boot_bios
stage unknown unknown
stage install-uefi install_uefi
stage boot-uefi boot_uefi
stage rearm rearm
stage no-token no_token_logged
stages_report "$OUT/timings.txt"
if [ -f "$E2E/timings.txt" ]; then
    echo "power-on to installed: network $(awk '$1 == "install-bios" { print $2 }' "$OUT/timings.txt") s (BIOS)," \
        "$(awk '$1 == "install-uefi" { print $2 }' "$OUT/timings.txt") s (UEFI); ISO $(awk '$1 == "install" { print $2 }' "$E2E/timings.txt") s (UEFI)"
fi
echo "netboot: PASS (serial logs in $OUT)"
