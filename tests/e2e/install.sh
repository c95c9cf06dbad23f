#!/usr/bin/env bash
# Main job: build the workspace and the install ISO, install it unattended into a QEMU VM (TCG) from an
# answer file on a disk labelled XENPROV, inspect the installed disk from the host, then boot it with SeaBIOS
# and with OVMF into Xen and dom0. Run as root on Debian 12; installs the Debian packages it needs.
# Artefacts (serial logs, sfdisk/LVM reports, timings) go to out/e2e/.
#
# Settings: XENPROV_E2E_OUT (out/e2e), XENPROV_E2E_ISO_FIRMWARE (uefi: the firmware the install boots with;
# the install medium is also booted from a USB stick under the other firmware up to the installer),
# XENPROV_E2E_FROM=STAGE (rerun from that stage on the artefacts of an earlier run, e.g. inspect).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
. tests/lib/qemu.sh
. tests/lib/stages.sh
. tests/lib/answer.sh

OUT=${XENPROV_E2E_OUT:-out/e2e}
ISO_FIRMWARE=${XENPROV_E2E_ISO_FIRMWARE:-uefi}
ANSWER=tests/e2e/answer.toml
ISO=$OUT/xenprov.iso
# What the answer file asks for, checked on the installed disk.
VG=dsk
HOSTNAME=xenprov-e2e
LVS="home:512M root:6G swap:1G tmp:512M var:2G"
ESP_SIZE=256M
BOOT_SIZE=512M
XEN_OPTS="dom0_mem=700M,max:700M dom0_max_vcpus=2 com1=115200,8n1 loglvl=all hap_2mb=0"

export LVM_SUPPRESS_FD_WARNINGS=1
need_cargo
need_pkgs debootstrap squashfs-tools xorriso mtools grub-common grub-pc-bin grub-efi-amd64-bin tar binutils \
    qemu-system-x86 ovmf dosfstools fdisk lvm2 e2fsprogs jq openssl openssh-client

stages_init e2e "${XENPROV_E2E_FROM:-}"
bytes() { numfmt --from=iec "$1"; }

MNT=$OUT/mnt
cleanup() {
    qemu_stop_all
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    detach_loops
    return 0
}
detach_loops() {
    local dev
    for dev in $(losetup --noheadings --output NAME --associated "$OUT/target.img" 2>/dev/null); do
        losetup -d "$dev"
    done
}
trap cleanup EXIT

build() {
    cargo build --release --workspace
}

make_iso() {
    # A failed install powers off too, so the test reports it at once instead of at its timeout.
    target/release/xenprov-image iso --out "$ISO" --work-dir "$OUT/image" --kernel-arg xenprov.on-error=poweroff
    ls -l "$ISO"
    local report
    report=$(xorriso -indev "$ISO" -report_el_torito plain -pvd_info 2>&1)
    grep -Eq 'El Torito boot img : +1 +BIOS' <<<"$report" || fail "no BIOS El Torito boot image"
    grep -Eq 'El Torito boot img : +2 +UEFI' <<<"$report" || fail "no UEFI El Torito boot image"
    grep -Eq 'Volume Id +: XENPROV_ISO' <<<"$report" || fail "volume label is not XENPROV_ISO"
    for f in /boot/vmlinuz /boot/initrd.img /boot/grub/grub.cfg /live/root.squashfs /live/layer.squashfs \
        /xenprov/payload.tar.zst /xenprov/payload.json; do
        xorriso -indev "$ISO" -ls "$f" >/dev/null 2>&1 || fail "$f missing on the ISO"
    done
}

make_disks() {
    rm -f "$OUT/target.img" "$OUT/witness.img"
    truncate -s 20G "$OUT/target.img"
    answer_disk "$ANSWER" "$OUT"
    head -c 32M /dev/urandom >"$OUT/witness.img"
    sha256sum <"$OUT/witness.img" >"$OUT/witness.sha256"
}

install() {
    local args
    mapfile -t args < <(qemu_cdrom "$ISO"
        qemu_disk "$OUT/target.img" XPTARGET0
        qemu_disk "$OUT/answer.img" XPANSWER0
        qemu_disk "$OUT/witness.img" XPWITNESS0
        qemu_net)
    QEMU_MEM=2048 qemu_start install "$ISO_FIRMWARE" "$OUT/install.serial.log" "${args[@]}"
    qemu_wait_exit install 1800 || fail "the install did not power off within 30 min"
    local log=$OUT/install.serial.log
    grep -aq 'xenprov: install complete' "$log" || fail "no 'xenprov: install complete' in $log"
    grep -aq 'reboot: Power down' "$log" || fail "the VM did not power off (no 'reboot: Power down' in $log)"
}

# The medium on a USB stick, under the other firmware: it must boot to the installer, which finds no
# answer (no XENPROV disk) and waits in guided mode.
medium_usb() {
    local firmware=bios args
    [ "$ISO_FIRMWARE" = bios ] && firmware=uefi
    mapfile -t args < <(printf '%s\n' -drive "file=$ISO,format=raw,if=none,id=stick,readonly=on" \
        -device qemu-xhci -device usb-storage,drive=stick,bootindex=0)
    QEMU_MEM=2048 qemu_start medium "$firmware" "$OUT/medium-usb-$firmware.serial.log" "${args[@]}"
    qemu_wait_log medium 'xenprov-live: ready, medium /dev/sd[a-z]\b' 900 || fail "medium on USB ($firmware) did not reach the installer"
    qemu_stop medium
}

# Size in bytes of the partition of type $1, from the sfdisk report.
part_size() {
    jq -r --arg t "$1" '.partitiontable as $p | $p.partitions[] | select(.type == $t) | .size * $p.sectorsize' \
        "$OUT/target.sfdisk.json"
}
# A read-only loop device over the partition of type $1 (by offset: no udev here to make partition nodes).
part_loop() {
    local start size
    read -r start size < <(jq -r --arg t "$1" \
        '.partitiontable as $p | $p.partitions[] | select(.type == $t) | "\(.start * $p.sectorsize) \(.size * $p.sectorsize)"' \
        "$OUT/target.sfdisk.json")
    losetup --find --show --read-only --offset "$start" --sizelimit "$size" "$OUT/target.img"
}

inspect() {
    sha256sum -c --status <(sed 's|-$|'"$OUT/witness.img"'|' "$OUT/witness.sha256") ||
        fail "the third disk changed"
    sfdisk --json "$OUT/target.img" >"$OUT/target.sfdisk.json"
    [ "$(jq -r .partitiontable.label "$OUT/target.sfdisk.json")" = gpt ] || fail "target is not GPT"
    local bios_boot=21686148-6449-6E6F-744E-656564454649 esp=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
    local linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4 lvm=E6D6D379-F507-44C2-A23C-238F2A3DF928
    [ -n "$(part_size $bios_boot)" ] || fail "no BIOS boot partition (firmware bios+uefi)"
    [ "$(part_size $esp)" = "$(bytes $ESP_SIZE)" ] || fail "ESP is not $ESP_SIZE"
    [ "$(part_size $linux)" = "$(bytes $BOOT_SIZE)" ] || fail "/boot is not $BOOT_SIZE"
    [ -n "$(part_size $lvm)" ] || fail "no LVM partition"
    cmp -s -n 440 "$OUT/target.img" /dev/zero && fail "no boot code in the MBR (BIOS)"

    local pv boot espdev
    pv=$(part_loop $lvm)
    boot=$(part_loop $linux)
    espdev=$(part_loop $esp)
    local lvm_args=(--devices "$pv" --readonly --reportformat json --units b --nosuffix)
    pvs "${lvm_args[@]}" >"$OUT/target.pvs.json"
    vgs "${lvm_args[@]}" -o vg_name,vg_size,vg_free >"$OUT/target.vgs.json"
    lvs "${lvm_args[@]}" -o lv_name,vg_name,lv_size,seg_pe_ranges,vg_extent_size >"$OUT/target.lvs.json"
    [ "$(jq -r '.report[0].vg[0].vg_name' "$OUT/target.vgs.json")" = "$VG" ] || fail "no volume group $VG"
    local free
    free=$(jq -r '.report[0].vg[0].vg_free' "$OUT/target.vgs.json")
    ((free > 8 * 1024 ** 3)) || fail "volume group $VG has only $free bytes free for guests"
    local got want
    got=$(jq -r '.report[0].lv[] | "\(.lv_name):\(.lv_size)"' "$OUT/target.lvs.json" | sort | tr '\n' ' ')
    want=$(for lv in $LVS; do echo "${lv%%:*}:$(bytes "${lv#*:}")"; done | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "logical volumes are '$got', the answer asks for '$want'"

    # The installer writes the payload before adding the journal; it must be there now.
    dumpe2fs -h "$boot" 2>/dev/null | grep -q '^Filesystem features:.*has_journal' || fail "/boot has no journal"
    mkdir -p "$MNT"
    mount -o ro,noload "$boot" "$MNT"
    local cfg=$MNT/grub/grub.cfg opt
    [ -f "$cfg" ] || fail "no /boot/grub/grub.cfg"
    cp "$cfg" "$OUT/target.grub.cfg"
    grep -q 'multiboot2.*/xen-4.17-amd64.gz' "$cfg" || fail "grub.cfg does not boot Xen by multiboot2"
    for opt in $XEN_OPTS; do
        grep -q -- "multiboot2.*$opt" "$cfg" || fail "grub.cfg lacks the Xen option $opt"
    done
    grep -q 'module2.*console=hvc0' "$cfg" || fail "dom0 kernel lacks console=hvc0"
    umount "$MNT"
    MTOOLS_SKIP_CHECK=1 mdir -i "$espdev" ::/EFI/BOOT/BOOTX64.EFI >/dev/null 2>&1 || fail "no removable-path EFI loader"

    # The root LV, without device-mapper: a loop over its (linear) extents in the PV.
    local pe_start extent first_pe
    pe_start=$(pvs "${lvm_args[@]}" -o pe_start | jq -r '.report[0].pv[0].pe_start')
    extent=$(jq -r '.report[0].lv[0].vg_extent_size' "$OUT/target.lvs.json")
    first_pe=$(jq -r '.report[0].lv[] | select(.lv_name == "root") | .seg_pe_ranges' "$OUT/target.lvs.json" |
        sed 's/.*:\([0-9]*\)-.*/\1/')
    mount -o "ro,noload,offset=$((pe_start + first_pe * extent)),sizelimit=$(bytes 6G)" "$pv" "$MNT"
    [ "$(cat "$MNT/etc/hostname")" = "$HOSTNAME" ] || fail "root LV: hostname is not $HOSTNAME"
    grep -q "/dev/mapper/$VG-var\|/var" "$MNT/etc/fstab" || fail "root LV: no /var in /etc/fstab"
    [ -x "$MNT/usr/sbin/xenprov-install" ] || fail "root LV: no /usr/sbin/xenprov-install"
    [ -f "$MNT/usr/lib/systemd/system/xenprov-repo.service" ] || fail "root LV: no packaged xenprov-repo.service"
    [ "$(readlink "$MNT/etc/systemd/system/multi-user.target.wants/xenprov-repo.service")" = \
        /usr/lib/systemd/system/xenprov-repo.service ] || fail "root LV: xenprov-repo.service is not enabled from the package"
    [ -e "$MNT/etc/systemd/system/xenprov-repo.service" ] && fail "root LV: a unit in /etc shadows the package's"
    [ -f "$MNT/usr/share/man/man8/xenprov-repo.8.gz" ] || fail "root LV: no man page of xenprov-repo"
    umount "$MNT"
    detach_loops
}

# Boots the installed disk; Xen must run with the answer's options, then dom0 up to its login prompt.
boot_target() {
    local firmware=$1 name=boot-$1 args line opt
    local log=$OUT/$name.serial.log
    mapfile -t args < <(qemu_disk "$OUT/target.img" XPTARGET0 bootindex=0; qemu_net)
    qemu_start "$name" "$firmware" "$log" "${args[@]}"
    qemu_wait_log "$name" '\(XEN\) Command line:' 600 || fail "$firmware: Xen did not start"
    line=$(grep -a -m1 '(XEN) Command line:' "$log")
    for opt in $XEN_OPTS; do
        grep -q -- " $opt\b" <<<"$line " || fail "$firmware: Xen command line lacks $opt: $line"
    done
    # Linux 6.1 says "Booting kernel on Xen"; older ones "Booting paravirtualized kernel on Xen".
    qemu_wait_log "$name" 'Booting (paravirtualized )?kernel on Xen' 600 || fail "$firmware: dom0 kernel did not boot on Xen"
    grep -aq 'Hypervisor detected: Xen PV' "$log" || fail "$firmware: dom0 is not a PV kernel on Xen"
    qemu_wait_log "$name" "$HOSTNAME login:" 900 || fail "$firmware: no login prompt"
    qemu_stop "$name"
}

[ -n "$STAGE_FROM" ] || rm -rf "$OUT"
mkdir -p "$OUT"
stage build build
stage iso make_iso
stage disks make_disks
stage install install
stage inspect inspect
stage boot-bios boot_target bios
stage boot-uefi boot_target uefi
stage medium-usb medium_usb
stages_report "$OUT/timings.txt"
echo "e2e: PASS (serial logs in $OUT)"
