#!/usr/bin/env bash
# Installer kernels and initrds for xl, with nothing copied by hand: `xenprov-guest fetch-installer`
# (what `new` does first) reads them from install trees that the real repo server serves — an
# Anaconda tree inside an ISO image made by xorriso and served in place (`.treeinfo` names the
# images and their SHA-256), and a Debian-layout tree (`SHA256SUMS` under installer-amd64) — into
# its cache, and refuses a file that does not match its list. The kickstart's install source is the
# ISO's URL. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
. tests/lib/servers.sh
need_pkgs xorriso curl
cargo build -q --release -p xenprov-guest -p xenprov-repo
guest=$PWD/target/release/xenprov-guest
repo=$PWD/target/release/xenprov-repo
scratch_init

# An EL DVD's layout: .treeinfo with [images-x86_64] and [checksums], images/pxeboot/.
dvd=$T/dvd
mkdir -p "$dvd/images/pxeboot" "$dvd/BaseOS"
head -c 6M /dev/urandom >"$dvd/images/pxeboot/vmlinuz"
head -c 20M /dev/urandom >"$dvd/images/pxeboot/initrd.img"
treeinfo() {
    cat <<INI
[header]
type = productmd.treeinfo
version = 1.2

[release]
name = Rocky Linux
short = Rocky
version = 9.4

[tree]
arch = x86_64
platforms = x86_64,xen

[images-x86_64]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img

[checksums]
images/pxeboot/initrd.img = sha256:$2
images/pxeboot/vmlinuz = sha256:$1
INI
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
treeinfo "$(sum "$dvd/images/pxeboot/vmlinuz")" "$(sum "$dvd/images/pxeboot/initrd.img")" >"$dvd/.treeinfo"
xorriso -as mkisofs -R -J -V Rocky-9-4-x86_64-dvd -o "$T/rocky.iso" "$dvd" 2>/dev/null
# The same tree with a .treeinfo whose kernel checksum is wrong.
treeinfo "$(sum "$dvd/images/pxeboot/initrd.img")" "$(sum "$dvd/images/pxeboot/initrd.img")" >"$dvd/.treeinfo"
xorriso -as mkisofs -R -J -V Rocky-9-4-x86_64-dvd -o "$T/bad.iso" "$dvd" 2>/dev/null

# A Debian-layout tree on disk: d-i's netboot files and their SHA256SUMS.
imgs=$T/root/debian/dists/bookworm/main/installer-amd64/current/images
mkdir -p "$imgs/netboot/debian-installer/amd64"
head -c 5M /dev/urandom >"$imgs/netboot/debian-installer/amd64/linux"
head -c 9M /dev/urandom >"$imgs/netboot/debian-installer/amd64/initrd.gz"
(cd "$imgs" && sha256sum ./netboot/debian-installer/amd64/linux ./netboot/debian-installer/amd64/initrd.gz >SHA256SUMS)

port=$(free_port)
"$repo" serve --listen "127.0.0.1:$port" --root "$T/root" --iso "rocky9=$T/rocky.iso" --iso "bad=$T/bad.iso" \
    2>"$T/server.log" &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port

cat >"$T/guests.toml" <<CFG
repo-url = "$url"
installer-cache = "$T/cache"
trees = [{ os = "rocky9", url = "$url/rocky9" }]
[paths]
registry = "$T/registry"
CFG
fetch() { "$guest" --config "$T/guests.toml" fetch-installer "$@"; }

step "rocky9 from the ISO served in place"
out=$(fetch rocky9) || fail "fetch-installer rocky9: $out"
cmp "$T/cache/rocky9/kernel" "$dvd/images/pxeboot/vmlinuz" || fail "the cached kernel is not the ISO's"
cmp "$T/cache/rocky9/initrd" "$dvd/images/pxeboot/initrd.img" || fail "the cached initrd is not the ISO's"
grep -qx "kernel $T/cache/rocky9/kernel" <<<"$out" || fail "fetch-installer said: $out"
log_has 'path=/rocky9/images/pxeboot/initrd.img status=200' || fail "the initrd did not come from the repo server"
echo "ok: kernel and initrd read from the ISO through its .treeinfo, checked, cached"

step "the kickstart installs from the ISO's URL"
"$guest" --config "$T/guests.toml" render --from tests/guests/rocky.toml kickstart >"$T/rocky.ks"
grep -q "url --url=\"\{0,1\}$url/rocky9\"\{0,1\}" "$T/rocky.ks" || fail "install source: $(grep -m1 '^url' "$T/rocky.ks")"
"$guest" --config "$T/guests.toml" render --from tests/guests/rocky.toml xl >"$T/rocky.cfg"
grep -qx "kernel = \"$T/cache/rocky9/kernel\"" "$T/rocky.cfg" || fail "xl config: $(grep kernel "$T/rocky.cfg")"
echo "ok: the kickstart's install source is $url/rocky9, xl boots the cached kernel"

step "reused while it matches; fetched again when it does not"
before=$(log_count 'path=/rocky9/images/pxeboot/vmlinuz')
fetch rocky9 >/dev/null
[ "$(log_count 'path=/rocky9/images/pxeboot/vmlinuz')" -eq "$before" ] || fail "a matching cached kernel was fetched again"
printf x >>"$T/cache/rocky9/kernel"
fetch rocky9 >/dev/null
cmp -s "$T/cache/rocky9/kernel" "$dvd/images/pxeboot/vmlinuz" || fail "a damaged cached kernel was kept"
echo "ok: the cache is checked against the list on every use"

step "a kernel that does not match its .treeinfo is refused"
sed -i "s|$url/rocky9|$url/bad|" "$T/guests.toml"
rm -rf "$T/cache"
if out=$(fetch rocky9 2>&1); then fail "a kernel with the wrong SHA-256 was accepted"; fi
grep -q "vmlinuz has SHA-256 .*refusing to boot it" <<<"$out" || fail "refusal: $out"
[ ! -e "$T/cache/rocky9/kernel" ] || fail "the refused kernel was left in the cache"
echo "ok: $(grep -m1 "refusing to boot" <<<"$out" | cut -c1-200)"

step "debian12 from a Debian-layout tree (SHA256SUMS)"
out=$(fetch debian12) || fail "fetch-installer debian12: $out"
cmp "$T/cache/debian12/initrd" "$imgs/netboot/debian-installer/amd64/initrd.gz" || fail "the cached initrd is not the tree's"
rm "$imgs/netboot/debian-installer/amd64/linux"
rm -rf "$T/cache"
if out=$(fetch debian12 2>&1); then fail "a missing kernel was not noticed"; fi
grep -q "netboot/debian-installer/amd64/linux: 404" <<<"$out" || fail "missing file: $out"
echo "ok: from SHA256SUMS; a file the tree lacks is named: $(grep -m1 "404" <<<"$out" | cut -c1-160)"
echo "61-guest-installers: PASS"
