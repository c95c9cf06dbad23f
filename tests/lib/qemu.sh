# shellcheck shell=bash
# Sourced by tests and benchmarks: QEMU virtual machines under TCG (/dev/kvm is not usable here), each in
# the background with its serial console in a log file, killed when the calling script exits.
#
#   qemu_start NAME FIRMWARE LOG [QEMU ARGS...]   FIRMWARE: bios (SeaBIOS) or uefi (OVMF, fresh variables)
#   qemu_wait_log NAME REGEX TIMEOUT                0 once the serial log matches (extended regex);
#                                                   1 on timeout, 2 if the VM exited first
#   qemu_wait_exit NAME TIMEOUT                     0 once the VM has exited by itself (power-off; -no-reboot
#                                                   turns a reboot into an exit too), 1 on timeout
#   qemu_stop NAME                                  kills the VM
#   qemu_stop_all                                   kills every VM this script started
#   qemu_disk FILE SERIAL [DEVICE OPTS]             prints the arguments of a virtio disk with that serial
#                                                   (qcow2 by extension, else raw), e.g. opts bootindex=0
#   qemu_cdrom FILE                                 prints the arguments of a CD-ROM, booted first
#   qemu_net [HOSTFWD...]                           prints the arguments of a user-mode NIC, e.g. tcp::8022-:22
#
# Settings (environment): QEMU_MEM (MiB, 1536), QEMU_SMP (2), QEMU_CPU (qemu64,+svm: Xen wants SVM, and the
# PV dom0 crashes early with -cpu max). OVMF comes from the ovmf package, SeaBIOS is QEMU's default.

QEMU_MEM=${QEMU_MEM:-1536}
QEMU_SMP=${QEMU_SMP:-2}
QEMU_CPU=${QEMU_CPU:-qemu64,+svm}
QEMU_OVMF_CODE=${QEMU_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
QEMU_OVMF_VARS=${QEMU_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

declare -A QEMU_PID=() QEMU_LOG=()
# No VM outlives its script; a script with its own EXIT trap calls qemu_stop_all from it.
trap qemu_stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

qemu_start() {
    local name=$1 firmware=$2 log=$3
    shift 3
    local fw=()
    case $firmware in
    bios) ;;
    uefi)
        # A copy per run: the installer's efibootmgr entries must not leak into the next boot.
        cp "$QEMU_OVMF_VARS" "${log%.log}.OVMF_VARS.fd"
        fw=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$QEMU_OVMF_CODE"
            -drive "if=pflash,format=raw,unit=1,file=${log%.log}.OVMF_VARS.fd")
        ;;
    *) echo "qemu_start: firmware must be bios or uefi, not $firmware" >&2; return 1 ;;
    esac
    : >"$log"
    qemu-system-x86_64 -name "$name" -machine q35 -accel tcg -cpu "$QEMU_CPU" -smp "$QEMU_SMP" -m "$QEMU_MEM" \
        "${fw[@]}" -display none -vga std -monitor none -parallel none -serial "file:$log" -no-reboot \
        "$@" 2>"${log%.log}.qemu.err" &
    QEMU_PID[$name]=$!
    QEMU_LOG[$name]=$log
}

qemu_running() {
    kill -0 "${QEMU_PID[$1]}" 2>/dev/null
}

qemu_wait_log() {
    local name=$1 regex=$2 timeout=$3 start=$SECONDS
    while ! grep -aEq -- "$regex" "${QEMU_LOG[$name]}"; do
        if ! qemu_running "$name"; then
            grep -aEq -- "$regex" "${QEMU_LOG[$name]}" && return 0
            echo "qemu: $name exited before its serial log showed /$regex/" >&2
            return 2
        fi
        if ((SECONDS - start >= timeout)); then
            echo "qemu: $name: no /$regex/ in the serial log after ${timeout}s" >&2
            return 1
        fi
        sleep 1
    done
}

qemu_wait_exit() {
    local name=$1 timeout=$2 start=$SECONDS
    while qemu_running "$name"; do
        if ((SECONDS - start >= timeout)); then
            echo "qemu: $name still running after ${timeout}s" >&2
            return 1
        fi
        sleep 1
    done
    wait "${QEMU_PID[$name]}" 2>/dev/null || true
}

qemu_stop() {
    local pid=${QEMU_PID[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    fi
    unset "QEMU_PID[$1]"
}

qemu_stop_all() {
    local name
    for name in "${!QEMU_PID[@]}"; do
        qemu_stop "$name"
    done
}

# One argument per line, for: mapfile -t args < <(qemu_disk ...; qemu_net ...)
qemu_disk() {
    local file=$1 serial=$2 opts=${3:+,$3} format=raw id
    [[ $file == *.qcow2 ]] && format=qcow2
    id=d$(printf %s "$serial" | tr -c 'A-Za-z0-9' _)
    printf '%s\n' -drive "file=$file,format=$format,if=none,id=$id,cache=unsafe" \
        -device "virtio-blk-pci,drive=$id,serial=$serial$opts"
}

qemu_cdrom() {
    printf '%s\n' -drive "file=$1,format=raw,if=none,id=cd0,media=cdrom,readonly=on" -device ide-cd,drive=cd0,bootindex=0
}

qemu_net() {
    local fwd="" f
    for f in "$@"; do fwd+=",hostfwd=$f"; done
    printf '%s\n' -netdev "user,id=n0$fwd" -device virtio-net-pci,netdev=n0
}
