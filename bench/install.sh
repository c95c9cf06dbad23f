#!/usr/bin/env bash
# Benchmark (not a test): under QEMU TCG on this machine,
#   1. ISO boot -> powered off: the install medium's default entry, answer on a XENPROV disk (goal <= 5 min);
#   2. installed disk -> login prompt, SeaBIOS and OVMF (goal <= 2 min);
#   3. the installer's payload write step against dd of the same number of bytes to the same disk in the
#      same VM (goal <= 1.3x). The medium's kernel is booted directly with xenprov.bench-disk=, which makes the
#      live environment run dd of payload.json's unpacked-size onto the target before the installer starts;
#      the installer reports its payload write as "payload: R MiB read, N MiB unpacked in S s".
# Run as root after building the workspace (cargo build --release). Logs and results in out/bench/.
# XENPROV_BENCH_STEPS picks steps (default: "install boot write").
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/deps.sh
. tests/lib/qemu.sh
. tests/lib/answer.sh
need_pkgs debootstrap squashfs-tools xorriso mtools grub-common grub-pc-bin grub-efi-amd64-bin binutils \
    qemu-system-x86 ovmf dosfstools openssl openssh-client

OUT=${XENPROV_BENCH_OUT:-out/bench}
STEPS=" ${XENPROV_BENCH_STEPS:-install boot write} "
ISO=$OUT/xenprov.iso
rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS=()
result() {
    RESULTS+=("$(printf '%-40s %s' "$1" "$2")")
    echo "bench: $1: $2"
}

target/release/xenprov-image iso --out "$ISO" --work-dir "$OUT/image"

fresh_disks() {
    rm -f "$OUT/target.img"
    truncate -s 20G "$OUT/target.img"
    answer_disk tests/e2e/answer.toml "$OUT"
}

# Seconds from start until the VM's serial log matches, or until it exits when REGEX is empty.
timed_vm() {
    local name=$1 regex=$2 timeout=$3 start=$SECONDS
    if [ -n "$regex" ]; then
        qemu_wait_log "$name" "$regex" "$timeout" >&2 || return 1
    else
        qemu_wait_exit "$name" "$timeout" >&2 || return 1
    fi
    echo $((SECONDS - start))
}

# 1. ISO boot -> powered off
step_install() {
    fresh_disks
    mapfile -t args < <(qemu_cdrom "$ISO"; qemu_disk "$OUT/target.img" XPTARGET0; qemu_disk "$OUT/answer.img" XPANSWER0; qemu_net)
    QEMU_MEM=2048 qemu_start install uefi "$OUT/install.serial.log" "${args[@]}"
    start=$SECONDS
    qemu_wait_log install 'xenprov-live: ready' 900
    result "ISO boot -> installer started (UEFI)" "$((SECONDS - start)) s"
    qemu_wait_exit install 1800
    grep -aq 'xenprov: install complete' "$OUT/install.serial.log" || { echo "bench: install failed" >&2; exit 1; }
    result "ISO boot -> powered off (UEFI)" "$((SECONDS - start)) s"
}

# 2. installed disk -> login prompt
step_boot() {
    for firmware in bios uefi; do
        mapfile -t args < <(qemu_disk "$OUT/target.img" XPTARGET0 bootindex=0; qemu_net)
        qemu_start "boot-$firmware" "$firmware" "$OUT/boot-$firmware.serial.log" "${args[@]}"
        result "installed disk -> login prompt ($firmware)" "$(timed_vm "boot-$firmware" 'login:' 900) s"
        qemu_stop "boot-$firmware"
    done
}

# 3. payload write vs dd, direct kernel boot of the medium's kernel and initrd (-kernel takes boot index 0)
step_write() {
    xorriso -osirrox on -indev "$ISO" -extract /boot/vmlinuz "$OUT/vmlinuz" -extract /boot/initrd.img "$OUT/initrd.img" 2>/dev/null
    fresh_disks
    mapfile -t args < <(printf '%s\n' -drive "file=$ISO,format=raw,if=none,id=cd0,media=cdrom,readonly=on" -device ide-cd,drive=cd0
        qemu_disk "$OUT/target.img" XPTARGET0; qemu_disk "$OUT/answer.img" XPANSWER0; qemu_net)
    QEMU_MEM=2048 qemu_start write bios "$OUT/write.serial.log" -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" \
        -append "boot=xenprov console=ttyS0,115200n8 xenprov.mode=auto xenprov.bench-disk=/dev/disk/by-id/virtio-XPTARGET0" \
        "${args[@]}"
    qemu_wait_exit write 1800
    dd_line=$(grep -a -m1 'xenprov-bench: dd wrote' "$OUT/write.serial.log" || true)
    write_line=$(grep -a -m1 -E 'payload: [0-9]+ MiB read, [0-9]+ MiB unpacked in [0-9.]+ s' "$OUT/write.serial.log" || true)
    if [ -n "$dd_line" ] && [ -n "$write_line" ]; then
        # shellcheck disable=SC2001 # a regex capture, which no parameter expansion does
        read -r dd_bytes dd_s < <(sed 's/.*wrote \([0-9]*\) bytes in \([0-9.]*\) s.*/\1 \2/' <<<"$dd_line")
        read -r w_mib w_s < <(sed -E 's/.*read, ([0-9]+) MiB unpacked in ([0-9.]+) s.*/\1 \2/' <<<"$write_line")
        result "dd (zeros, O_DIRECT, 4 MiB blocks)" "$((dd_bytes / 1048576)) MiB in $dd_s s"
        result "payload write step (installer)" "$w_mib MiB in $w_s s"
        result "payload write / dd, same bytes" \
            "$(awk -v a="$w_s" -v am="$w_mib" -v b="$dd_s" -v bb="$dd_bytes" 'BEGIN { printf "%.2fx", (a / am) / (b / (bb / 1048576)) }')"
        # Where the payload write's time goes: the same VM reading, hashing, decompressing the payload alone.
        local line
        while read -r line; do
            result "  ${line%% in *}" "${line##* in }"
        done < <(grep -a -E 'xenprov-bench: (read|sha256|zstd)' "$OUT/write.serial.log" | sed 's/^xenprov-bench: //; s/\r$//')
    else
        result "payload write / dd" "not measured (dd: '${dd_line:-none}', installer: '${write_line:-none}')"
    fi
}

for step in install boot write; do
    if [[ $STEPS == *" $step "* ]]; then "step_$step"; fi
done

printf '%s\n' "${RESULTS[@]}" | tee "$OUT/results.txt"
