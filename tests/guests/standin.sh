#!/usr/bin/env bash
# Runs in the dom0, in place of the part of d-i that cannot run here: this machine's Debian mirror
# serves no udebs, so a guest's d-i stops at "Download installer components", after it has booted
# on Xen, fetched its preseed and reported `started`. With that installer paused, this does what
# partman, base-installer and grub-installer would, as the guest's preseed says; pkgsel's packages
# (pkgsel/include, but not tasksel's "standard" task) are installed for real, with apt-get from the
# preseed's mirror: the repo server's verifying cache. Then it runs the preseed's own late_command
# (SSH keys, post-install script, the `done` event).
# Everything after — the installer's domain ending, `xenprov-guest wait` switching to the run-phase
# config, pvgrub2 or the disk's MBR booting the guest — is the real thing.
#
#   standin.sh NAME PRESEED_URL <ROOTFS.tar.zst     (the rootfs from tests/guests/rootfs.sh)
set -euo pipefail
# In a mount namespace of its own: the chroot's binds of /dev, /proc and /sys must not take the
# dom0's own mounts (its /dev/pts, that xenconsoled needs) with them when they are unmounted.
[ -n "${XENPROV_STANDIN_NS:-}" ] || XENPROV_STANDIN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
NAME=$1 URL=$2
preseed=$(curl -fsS "$URL")
# The value of a `d-i QUESTION TYPE VALUE` line of the preseed.
val() { sed -n "s|^d-i $1 [a-z]* \{0,1\}||p" <<<"$preseed" | head -1; }

# The guest's xvda is the disk its install config gives xl.
cfg=/var/lib/xenprov/guests/$NAME/install.cfg
lv=$(sed -n 's|.*vdev=xvda.*target=\([^" ,]*\).*|\1|p' "$cfg")
[ "$(val partman-auto/disk)" = /dev/xvda ] || { echo "standin: the preseed partitions $(val partman-auto/disk), not xvda" >&2; exit 1; }
[ -b "$lv" ] || { echo "standin: $lv (xvda of $NAME) is not a block device" >&2; exit 1; }

# partman-auto, recipe "atomic": one bootable ext4 root, swap in a logical partition at the end.
mib=$(($(blockdev --getsize64 "$lv") / 1048576))
sfdisk -q --no-reread --no-tell-kernel --wipe always --wipe-partitions always "$lv" <<EOF
label: dos
start=1MiB, size=$((mib - 1 - 512))MiB, type=83, bootable
type=5
type=82
EOF
loop=$(losetup -P -f --show "$lv")
T=/target
cleanup() {
    ! mountpoint -q "$T" || umount -R "$T"
    rmdir "$T"
    losetup -d "$loop"
}
trap cleanup EXIT
udevadm settle
mkfs.ext4 -q "${loop}p1"
mkswap -q "${loop}p5"
mkdir -p "$T"
mount "${loop}p1" "$T"

# base-installer: the base system, already unpacked and configured.
zstd -dc | tar -x -C "$T" --numeric-owner
root_uuid=$(blkid -s UUID -o value "${loop}p1")
swap_uuid=$(blkid -s UUID -o value "${loop}p5")
printf 'UUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s none swap sw 0 0\n' "$root_uuid" "$swap_uuid" >"$T/etc/fstab"
host=$(val netcfg/get_hostname)
echo "$host" >"$T/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$host" >"$T/etc/hosts"
printf 'deb http://%s%s %s main\n' "$(val mirror/http/hostname)" "$(val mirror/http/directory)" \
    "$(val mirror/suite)" >"$T/etc/apt/sources.list"
for d in dev proc sys; do mount --rbind "/$d" "$T/$d"; done

# pkgsel: apt-get in the target, as d-i's apt-install runs it, with services kept from starting.
printf '#!/bin/sh\nexit 101\n' >"$T/usr/sbin/policy-rc.d"
chmod 755 "$T/usr/sbin/policy-rc.d"
chroot "$T" apt-get -q update 2>&1 | sed 's/^/standin: apt-get: /'
# shellcheck disable=SC2046 # one package per word
DEBIAN_FRONTEND=noninteractive chroot "$T" apt-get -q -y install $(val pkgsel/include) 2>&1 |
    sed 's/^/standin: apt-get: /'
rm "$T/usr/sbin/policy-rc.d"
hash=$(val passwd/root-password-crypted)
sed -i "s|^root:[^:]*:|root:$hash:|" "$T/etc/shadow"
ssh-keygen -q -A -f "$T"

# grub-installer: GRUB on the boot device (the MBR that HVM boots) and its grub.cfg (what pvgrub2
# reads for PV and PVH), with the preseed's kernel options.
bootdev=$(val grub-installer/bootdev)
[ "$bootdev" = /dev/xvda ] || { echo "standin: GRUB goes to $bootdev, not xvda" >&2; exit 1; }
printf 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=Debian\nGRUB_CMDLINE_LINUX_DEFAULT=""\nGRUB_CMDLINE_LINUX="%s"\nGRUB_TERMINAL=console\n' \
    "$(val debian-installer/add-kernel-opts)" >"$T/etc/default/grub"
chroot "$T" grub-install --target=i386-pc "$loop"
chroot "$T" update-grub 2>&1 | sed 's/^/standin: update-grub: /'

# The preseed's late_command, as d-i runs it; the dom0 has no nc (d-i's busybox has), so bash's
# /dev/tcp speaks in its place.
in-target() { chroot "$T" "$@"; }
nc() {
    local host=$3 port=$4
    exec 3<>"/dev/tcp/$host/$port"
    cat >&3
    cat <&3
    exec 3>&-
}
late=$(sed -n 's|^d-i preseed/late_command string ||p' <<<"$preseed")
[ -n "$late" ] || { echo "standin: the preseed has no late_command" >&2; exit 1; }
eval "$late"
echo "standin: $NAME installed on $lv (root $root_uuid)"
