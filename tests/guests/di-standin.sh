#!/usr/bin/env bash
# A stand-in for d-i's netboot kernel and initrd, for a machine whose Debian mirror serves none of
# d-i (every udeb, installer-amd64/current/images/ and debian-installer-12-netboot-amd64 answer
# 404 here). It is what xenprov-guest fetches in their place, through the same path and the same
# check (SHA256SUMS), and it does d-i's part that the guests' tests watch: the kernel is Debian's
# own (the guests' root file system's, the kernel d-i boots), and the initrd (busybox-static from
# the mirror, xen-netfront from that kernel) brings up the network by DHCP, fetches the preseed
# from `url=` with its token, runs the preseed's early_command (which reports `started`), fetches
# the mirror's Release as choose-mirror does, and waits there, as d-i would at "Download installer
# components" on this mirror. tests/guests/standin.sh then does the package steps in the dom0.
#
#   di-standin.sh ROOTFS.tar.zst OUTDIR   writes OUTDIR/SHA256SUMS and OUTDIR/netboot/debian-installer/amd64/{linux,initrd.gz}
set -euo pipefail
ROOTFS=$1 OUT=$2
CACHE=${XENPROV_CACHE:-/var/cache/xenprov}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$CACHE/debs" "$work/x" "$work/initrd/bin" "$work/initrd/lib" "$work/initrd/proc" \
    "$work/initrd/sys" "$work/initrd/dev" "$work/initrd/tmp"
deb=$(find "$CACHE/debs" -maxdepth 1 -name 'busybox-static_*_amd64.deb' | sort | tail -1)
if [ -z "$deb" ]; then
    (cd "$CACHE/debs" && apt-get download busybox-static >/dev/null 2>&1)
    deb=$(find "$CACHE/debs" -maxdepth 1 -name 'busybox-static_*_amd64.deb' | sort | tail -1)
fi
dpkg-deb -x "$deb" "$work/x"
cp "$work/x/bin/busybox" "$work/initrd/bin/busybox"
zstd -dc "$ROOTFS" | tar -x -C "$work" --wildcards './boot/vmlinuz-*' './usr/lib/modules/*/kernel/drivers/net/xen-netfront.ko'
cp "$work"/usr/lib/modules/*/kernel/drivers/net/xen-netfront.ko "$work/initrd/lib/"

cat >"$work/initrd/bin/dhcp-event" <<'SH'
#!/bin/sh
# udhcpc's event script: take the lease.
case $1 in
bound | renew)
    ifconfig "$interface" "$ip" netmask "$subnet" up
    [ -z "$router" ] || route add default gw "${router%% *}" dev "$interface"
    ;;
esac
SH
cat >"$work/initrd/init" <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec >/dev/console 2>&1 </dev/console
say() { echo "xenprov d-i stand-in: $*"; }
stop() { say "$*"; while :; do sleep 3600; done; }
say "kernel $(uname -r)"
insmod /lib/xen-netfront.ko || stop "no xen-netfront"
n=0
until [ -e /sys/class/net/eth0 ] || [ $n -ge 30 ]; do sleep 1; n=$((n + 1)); done
[ -e /sys/class/net/eth0 ] || stop "no eth0 after 30 s"
ifconfig lo 127.0.0.1 up
# udhcpc does not raise the link itself ("sendto: Network is down").
ifconfig eth0 up
udhcpc -i eth0 -s /bin/dhcp-event -q -n -t 20 -T 3 || stop "no DHCP lease on eth0"
url=
for a in $(cat /proc/cmdline); do case $a in url=*) url=${a#url=} ;; esac; done
[ -n "$url" ] || stop "no url= on the kernel command line"
wget -q -O /tmp/preseed "$url" || stop "fetching the preseed from $url failed"
say "preseed fetched"
val() { sed -n "s|^d-i $1 [a-z]* \{0,1\}||p" /tmp/preseed | head -1; }
early=$(val preseed/early_command)
[ -z "$early" ] || sh -c "$early" || say "early_command failed"
host=$(val mirror/http/hostname) dir=$(val mirror/http/directory) suite=$(val mirror/suite)
wget -q -O /tmp/Release "http://$host$dir/dists/$suite/Release" || stop "the mirror http://$host$dir has no $suite"
stop "mirror http://$host$dir checked; waiting where d-i would download its components"
SH
chmod 755 "$work/initrd/init" "$work/initrd/bin/dhcp-event"

mkdir -p "$OUT/netboot/debian-installer/amd64"
cp "$work"/boot/vmlinuz-* "$OUT/netboot/debian-installer/amd64/linux"
(cd "$work/initrd" && find . | cpio -o -H newc --quiet | gzip -9) >"$OUT/netboot/debian-installer/amd64/initrd.gz"
(cd "$OUT" && sha256sum ./netboot/debian-installer/amd64/linux ./netboot/debian-installer/amd64/initrd.gz >SHA256SUMS)
