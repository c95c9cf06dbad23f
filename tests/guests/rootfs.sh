#!/usr/bin/env bash
# The Debian root file system that tests/guests/standin.sh lays onto a guest's disk in place of d-i's
# package steps, which cannot run here (this machine's mirror serves no udebs). What d-i would
# install for the guests' preseed: the base system, the kernel, openssh-server and GRUB's tools.
# Guest-specific settings (hostname, root hash, keys, fstab, GRUB) are the stand-in's, from the
# served preseed.
#
#   tests/guests/rootfs.sh MIRROR      prints the path of a zstd-compressed tar, built once per input
#
# Cached in /var/cache/xenprov/guest-rootfs under a key of this script, the mirror and debootstrap's
# version; the .debs are shared with xenprov-image's cache.
set -euo pipefail
MIRROR=$1
CACHE=${XENPROV_CACHE:-/var/cache/xenprov}
SUITE=bookworm
PACKAGES=linux-image-amd64,systemd-sysv,udev,openssh-server,grub-pc-bin,grub2-common

key=$( (cat "$0"; echo "$MIRROR"; dpkg-query -W -f='${Version}' debootstrap) | sha256sum | cut -c1-16)
out=$CACHE/guest-rootfs/$key.tar.zst
[ -s "$out" ] && { echo "$out"; exit 0; }

mkdir -p "$CACHE/guest-rootfs" "$CACHE/debs/partial"
work=$(mktemp -d "$CACHE/guest-rootfs/build.XXXXXX")
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
# xenprov-image holds this lock while it uses the .deb cache.
exec 9>"$CACHE/.lock"
flock 9
debootstrap --variant=minbase --components=main --include="$PACKAGES" --cache-dir="$CACHE/debs" \
    "$SUITE" "$work/root" "$MIRROR" >&2
flock -u 9

root=$work/root
# DHCP on whatever the vif is called (eth0, enX0), by systemd-networkd as d-i's netcfg would set up.
cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
chroot "$root" systemctl enable -q systemd-networkd systemd-resolved 2>/dev/null ||
    chroot "$root" systemctl enable -q systemd-networkd
# Made per guest: machine id on first boot, SSH host keys and hostname by the stand-in.
: >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/hostname" "$root/var/cache/apt/archives/"*.deb
# The stand-in points APT at the preseed's mirror; lists from here would only go stale.
rm -rf "$root"/var/lib/apt/lists/*
tar -C "$root" --numeric-owner -c . | zstd -q -T0 -8 >"$work/rootfs.tar.zst"
mv "$work/rootfs.tar.zst" "$out"
find "$CACHE/guest-rootfs" -maxdepth 1 -name '*.tar.zst' ! -name "$key.tar.zst" -delete
echo "$out"
