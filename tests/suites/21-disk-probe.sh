#!/usr/bin/env bash
# The installer never takes a disk that holds data for blank: `plan` refuses, naming the disk and
# what it found (type and offset), every image below unless `[disk] wipe = true`; a probe that
# fails counts as data; apply's re-check refuses a disk that changed since its plan. Real images,
# made by the real tools (mkfs, sgdisk, pvcreate, cryptsetup); the md superblock is written by
# tests/installer/md-superblock.py (no md driver here) and read back by mdadm --examine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
. tests/lib/images.sh
need_pkgs e2fsprogs dosfstools gdisk fdisk lvm2 cryptsetup-bin mdadm util-linux zstd

cargo build --release -q -p xenprov-install
bin=$PWD/target/release/xenprov-install
work=$(mktemp -d)
loops=()
cleanup() {
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

answer_for() { image_answer "$1" "$2"; }
# What a write would change: the mtime, and the ends, where the GPT goes first (a whole 3 GiB hash per
# check made this suite slow).
fingerprint() { stat -c '%s %.9Y' "$1"; head -c 2M "$1" | sha256sum; tail -c 2M "$1" | sha256sum; }
new_image() { rm -f "$work/$1.img"; truncate -s 3G "$work/$1.img"; echo "$work/$1.img"; }

# NAME EXPECTED...: plan refuses the image without wipe, and its message names each EXPECTED
# (extended regexes); the image is unchanged. With wipe, the same image is planned.
refused() {
    local name=$1 img=$work/$1.img before
    shift
    before=$(fingerprint "$img")
    answer_for "$img" "" >"$work/$name.toml"
    if "$bin" plan --answer "$work/$name.toml" 2>"$work/$name.err" >/dev/null; then
        fail "$name: planned without wipe, as if blank"
    fi
    grep -q "disk.target: $img holds data" "$work/$name.err" || fail "$name: refusal does not say so: $(cat "$work/$name.err")"
    local want
    for want in "$@"; do
        grep -qE -- "$want" "$work/$name.err" || fail "$name: refusal does not name '$want': $(cat "$work/$name.err")"
    done
    [ "$(fingerprint "$img")" = "$before" ] || fail "$name: plan changed the image"
    answer_for "$img" "wipe = true" >"$work/$name-wipe.toml"
    "$bin" plan --answer "$work/$name-wipe.toml" >/dev/null || fail "$name: not planned even with wipe"
    pass "$name refused: $(grep -o 'holds data (.*);' "$work/$name.err" | cut -c1-150)"
}

# Blank: planned without wipe.
blank=$(new_image blank)
answer_for "$blank" "" >"$work/blank.toml"
"$bin" plan --answer "$work/blank.toml" >"$work/blank.plan" || fail "a blank image was refused"
grep -q "The disk is blank" "$work/blank.plan" || fail "the plan does not say the image is blank"
pass "a blank image is planned without wipe"

# Two signatures at once: ext4, whose first sector also holds a FAT boot sector (blkid -p exits 8).
img=$(new_image two)
mkfs.ext4 -q -F "$img"
truncate -s 64M "$work/fat.img" && mkfs.vfat "$work/fat.img" >/dev/null
dd if="$work/fat.img" of="$img" bs=512 count=1 conv=notrunc status=none
set +e; blkid -p "$img" >/dev/null 2>&1; rc=$?; set -e
[ "$rc" -eq 8 ] || echo "note: blkid -p exits $rc here (8 is 'ambivalent')"
refused two 'signature ext4 at 0x438' 'signature vfat at 0x36'

# Backup GPT only: the primary header and table zeroed, the backup at the end intact.
img=$(new_image backup-gpt)
sgdisk -n 1:1M:+1G "$img" >/dev/null 2>&1
dd if=/dev/zero of="$img" bs=512 count=34 conv=notrunc status=none
refused backup-gpt 'signature gpt at 0xbffffe00'

# LVM physical volume (pvcreate needs a block device: a loop device over the image).
img=$(new_image pv)
l=$(losetup -f --show "$img"); loops+=("$l")
pvcreate -ff -y "$l" >/dev/null 2>&1
losetup -d "$l"
refused pv 'signature LVM2_member at 0x218'

# md RAID member, superblock 1.2 at 4 KiB.
img=$(new_image md)
/usr/bin/python3 tests/installer/md-superblock.py "$img"
mdadm --examine "$img" | grep -q 'Checksum : .* correct' || fail "mdadm does not read the md superblock"
refused md 'signature linux_raid_member at 0x1000'

# LUKS2 header (primary and its copy at 16 KiB).
img=$(new_image luks)
printf pw | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$img" -
refused luks 'signature crypto_LUKS at 0x0'

# A filesystem on a partition: named with its partition, read from the image's GPT.
img=$(new_image part)
sgdisk -n 1:1M:+1G -c 1:data "$img" >/dev/null 2>&1
l=$(losetup -f --show -o $((1 << 20)) --sizelimit $((1 << 30)) "$img"); loops+=("$l")
mkfs.ext4 -q -L keepme "$l"
losetup -d "$l"
refused part 'signature gpt at 0x200' "partition $img:1 \(1 GiB, ext4, label keepme\)"

# The same filesystem with both partition tables zeroed: still found where the partition began.
img=$work/part.img
wipefs --no-act "$img" | grep -q PMBR || fail "sgdisk wrote no table"
dd if=/dev/zero of="$img" bs=1M count=1 conv=notrunc status=none
dd if=/dev/zero of="$img" bs=1M count=1 seek=3071 conv=notrunc status=none
mv "$work/part.img" "$work/lost-tables.img"
refused lost-tables 'ext4 at 0x100000'

# Bytes no probe knows, in the first MiB: not blank.
img=$(new_image junk)
printf 'some boot code' | dd of="$img" bs=1 seek=100 conv=notrunc status=none
refused junk 'unrecognised data at 0x64'

# A probe that cannot run (no wipefs on PATH) counts as data, and says so.
mkdir -p "$work/bin"
for t in blkid sgdisk; do ln -sf "$(command -v $t)" "$work/bin/"; done
if PATH=$work/bin "$bin" plan --answer "$work/blank.toml" 2>"$work/noprobe.err" >/dev/null; then
    fail "a disk that could not be probed was planned as blank"
fi
grep -q "holds data (it could not be probed: running wipefs" "$work/noprobe.err" || fail "no probe failure named: $(cat "$work/noprobe.err")"
pass "a failed probe counts as data: $(grep -o 'could not be probed: [^;]*' "$work/noprobe.err" | cut -c1-100)"

# apply's re-check: a plan made for the blank image, which then got a filesystem, writes nothing.
payload="$work/payload"
tiny_payload "$payload"
"$bin" plan --answer "$work/blank.toml" --payload "$payload" --json >"$work/blank.json"
mkfs.ext4 -q -F "$blank"
before=$(fingerprint "$blank")
if "$bin" apply --yes --answer "$work/blank.toml" --payload "$payload" 2>"$work/apply.err"; then
    fail "apply wrote over a filesystem without wipe"
fi
grep -q "holds data (signature ext4 at 0x438)" "$work/apply.err" || fail "apply's refusal does not name the filesystem: $(tail -3 "$work/apply.err")"
[ "$(fingerprint "$blank")" = "$before" ] || fail "a refused apply changed the image"
pass "apply refuses a disk that holds data, and writes nothing"
