#!/usr/bin/env bash
# Repo content with real clients: apt-get through the verifying pull-through cache of a local upstream
# (nginx) signed with a throw-away key; installer images through SHA256SUMS; one upstream fetch for
# concurrent misses; a tampered package and a tampered InRelease refused; the upstream stopped mid-way
# (cached files still served, the download resumed with a Range request); a restarted server that still
# knows what it verified; dnf through the cache of a createrepo_c repository and its .treeinfo images; an
# ISO built by xorriso served in place to apt-get; mirrors published atomically while apt-get update runs
# in a loop; an RPM mirror refused while tampered with, then used by dnf; an interrupted mirror sync that
# resumes. Loopback only; everything it starts is stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_cargo
need_pkgs curl apt-utils dpkg-dev gnupg gpgv xz-utils nginx xorriso rpm createrepo-c dnf python3
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo
helpers=$PWD/tests/repo-content

. tests/lib/servers.sh
scratch_init
trap 'echo "FAIL: ${BASH_SOURCE[0]} line $LINENO: $BASH_COMMAND" >&2' ERR

# --- the upstream: nginx on loopback, rate-limited for the huge package so that it can be stopped mid-way
up=$T/up
bash "$helpers/apt-upstream.sh" init "$up/debian" "$T/keys"
bash tests/repo-server/build-rpm-repo.sh "$up/rpm"
# repomd.xml signed (armored, as EL repositories sign it) for the mirror that requires a signature
GNUPGHOME=$T/keys/gnupg gpg --batch --yes --armor --detach-sign -o "$up/rpm/repodata/repomd.xml.asc" \
    "$up/rpm/repodata/repomd.xml"
up_port=$(free_port)
nginx_conf "server {
        listen 127.0.0.1:$up_port;
        root $up;
        location ~ huge { limit_rate 4m; }
    }" "access_log $T/nginx/access.log;"
start_upstream() {
    nginx_start
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$up_port/debian/dists/stable/Release" && return; sleep 0.1; done
    fail "nginx did not start"
}
stop_upstream() { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
upstream_gets() { grep -c "\"GET $1 " "$T/nginx/access.log" || true; }
start_upstream
upstream=http://127.0.0.1:$up_port

# --- the server under test: an upstream cache, an ISO and a mirror, all from one config file. The APT
# cache and the mirrors verify against the armored keyring, the RPM cache's keyring is the binary one.
cat >"$T/repo.toml" <<EOF
root = "$T/root"
listen = "127.0.0.1:0"
cache = "$T/cache"
mirrors = "$T/mirrors"
keyring = "$T/keys/key.gpg"

[[upstream]]
name = "deb"
url = "$upstream/debian"
keyring = "$T/keys/key.asc"
metadata-ttl = "1s"

[[upstream]]
name = "rpm"
url = "$upstream/rpm"

[[mirror]]
name = "mir"
upstream = "deb"
suites = ["stable"]
installer-images = ["netboot/xen/"]
keep = 2

[[mirror]]
name = "rmir"
url = "$upstream/rpm"
keyring = "$T/keys/key.asc"
repomd-signature = true
rpm = [""]

[[iso]]
name = "dvd"
path = "$T/dvd.iso"
EOF
mkdir -p "$T/root"
step "an ISO made by xorriso from the repository tree"
xorriso -as mkisofs -R -J -V XENPROV_DVD -o "$T/dvd.iso" "$up/debian" 2>/dev/null
server_pid=
start_server() {
    : >"$T/server.log"
    "$bin" serve --config "$T/repo.toml" 2>>"$T/server.log" &
    server_pid=$!
    pids+=("$server_pid")
    server_address "$server_pid"
}
start_server

# apt_update DIR: apt-get update that must neither warn nor fail.
apt_update() {
    APT_CONFIG=$1/apt.conf apt-get -q update >"$1/update.log" 2>&1 || { cat "$1/update.log"; return 1; }
    if grep -q '^W:\|^E:\|Hash Sum mismatch' "$1/update.log"; then cat "$1/update.log"; return 1; fi
}

step "apt-get through the cache, verifying against an armored keyring of two keys"
apt_root "$T/a1" "$base/deb"
apt_update "$T/a1" || fail "apt-get update through the cache"
log_has "path=/deb/dists/stable/InRelease status=200" || fail "apt did not get InRelease from the cache"
log_has "path=/deb/dists/stable/main/binary-amd64/by-hash/SHA" || fail "apt did not use by-hash through the cache"
step "installer images fetched directly, verified through SHA256SUMS"
images=dists/stable/main/installer-amd64/current/images
curl -sf "$base/deb/$images/netboot/xen/vmlinuz" -o "$T/vmlinuz" || fail "installer kernel through the cache"
cmp -s "$T/vmlinuz" "$up/debian/$images/netboot/xen/vmlinuz" || fail "installer kernel differs"

step "concurrent misses of one file make one upstream fetch"
big=/debian/pool/main/xenprov-big_1.0_all.deb
curls=()
for i in $(seq 8); do
    curl -s "$base/deb/pool/main/xenprov-big_1.0_all.deb" -o "$T/big.$i" -w '%{http_code}\n' >"$T/big.$i.code" &
    curls+=($!)
done
for p in "${curls[@]}"; do wait "$p" || fail "a concurrent download failed"; done
for i in $(seq 8); do [ "$(cat "$T/big.$i.code")" = 200 ] || fail "concurrent download $i answered $(cat "$T/big.$i.code")"; done
for i in $(seq 8); do cmp -s "$T/big.$i" "$up$big" || fail "concurrent download $i differs"; done
[ "$(upstream_gets "$big")" = 1 ] || fail "8 concurrent misses made $(upstream_gets "$big") upstream requests"
(cd "$T/a1/download" && APT_CONFIG=$T/a1/apt.conf apt-get -q download xenprov-hello xenprov-big >/dev/null) ||
    fail "apt-get download through the cache"
for deb in xenprov-hello_1.0_all.deb xenprov-big_1.0_all.deb; do
    cmp -s "$T/a1/download/$deb" "$up/debian/pool/main/$deb" || fail "apt got a different $deb"
done
[ "$(upstream_gets "$big")" = 1 ] || fail "a cache hit went upstream"
log_has "path=/deb/pool/main/xenprov-big_1.0_all.deb status=200" || fail "no access line for the hit"

step "a tampered package upstream is refused"
bash "$helpers/apt-upstream.sh" add "$up/debian" "$T/keys" xenprov-tamper 200000
sleep 1.2 # past the metadata TTL
apt_update "$T/a1" || fail "apt-get update after the upstream changed"
tamper=$up/debian/pool/main/xenprov-tamper_1.0_all.deb
cp "$tamper" "$T/tamper.orig"
printf 'X' | dd of="$tamper" bs=1 seek=100000 conv=notrunc status=none
code=$(curl -s -o "$T/tampered" -w '%{http_code}' "$base/deb/pool/main/xenprov-tamper_1.0_all.deb")
[ "$code" = 502 ] || fail "tampered package answered $code"
log_has "xenprov-tamper_1.0_all.deb: expected sha256 .* not served" || fail "refusal not logged plainly"
grep -q 'xenprov-tamper' <(find "$T/cache/deb" -name '*tamper*') && fail "tampered package linked into the cache"
(cd "$T/a1/download" && APT_CONFIG=$T/a1/apt.conf apt-get -q download xenprov-tamper >/dev/null 2>&1) &&
    fail "apt downloaded the tampered package"
cp "$T/tamper.orig" "$tamper"
step "a tampered InRelease is refused; the verified one is still served"
good_inrelease=$(curl -sf "$base/deb/dists/stable/InRelease")
cp "$up/debian/dists/stable/InRelease" "$T/InRelease.good"
sed -i 's/^Origin: xenprov-test/Origin: evil/' "$up/debian/dists/stable/InRelease"
sleep 1.2 # past the metadata TTL
[ "$(curl -sf "$base/deb/dists/stable/InRelease")" = "$good_inrelease" ] || fail "tampered InRelease served"
log_has "dists/stable/InRelease: bad or unknown signature" || fail "bad InRelease signature not logged"
cp "$T/InRelease.good" "$up/debian/dists/stable/InRelease"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/deb/pool/main/not-in-any-index.deb")
[ "$code" = 404 ] || fail "a file listed in no index answered $code"
[ "$(upstream_gets /debian/pool/main/not-in-any-index.deb)" = 0 ] || fail "an unlisted file was fetched upstream"

step "upstream stopped mid-way: cached files are served, the download resumes"
huge=/debian/pool/main/xenprov-huge_1.0_all.deb
curl -s -o "$T/huge.first" -w '%{http_code}' "$base/deb/pool/main/xenprov-huge_1.0_all.deb" >"$T/huge.code" &
curl_pid=$!
sleep 2
stop_upstream
wait "$curl_pid" || true
[ "$(cat "$T/huge.code")" = 502 ] || fail "download cut upstream answered $(cat "$T/huge.code")"
partial=$(find "$T/cache/deb/.partial" -type f -size +1M | head -1)
[ -n "$partial" ] || fail "no partial download kept"
sleep 1.2
apt_update "$T/a1" || fail "apt-get update with the upstream down"
rm -f "$T/a1/download"/*.deb
(cd "$T/a1/download" && APT_CONFIG=$T/a1/apt.conf apt-get -q download xenprov-big >/dev/null) ||
    fail "cached package not served with the upstream down"
log_has "serving /deb/dists/stable/InRelease as verified earlier" || fail "no warning about the unreachable upstream"
start_upstream
curl -sf "$base/deb/pool/main/xenprov-huge_1.0_all.deb" -o "$T/huge" || fail "download after the upstream came back"
cmp -s "$T/huge" "$up$huge" || fail "resumed download differs"
grep -q "\"GET $huge HTTP/1.1\" 206" "$T/nginx/access.log" || fail "the download was not resumed with a range"
step "after a restart the cache knows again what it verified"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
start_server
# listed in an index the cache verified before the restart, never fetched since the tamper was undone
curl -sf "$base/deb/pool/main/xenprov-tamper_1.0_all.deb" -o "$T/tamper.deb" || fail "fetch after a restart"
cmp -s "$T/tamper.deb" "$T/tamper.orig" || fail "package fetched after a restart differs"

# from here on only huge2 (the interrupted mirror sync's) is slow
sed -i 's/location ~ huge/location ~ huge2/' "$T/nginx/nginx.conf"
stop_upstream
start_upstream

step "dnf through the cache of an RPM repository"
dnf_install "$T/dnf" "$base/rpm" || fail "dnf install through the cache"
rpm --root "$T/dnf/root" -q xenprov-big xenprov-hello >/dev/null || fail "packages not in the installroot"
step "an install tree's .treeinfo images through the cache"
mkdir -p "$up/rpm/images/pxeboot"
head -c 300000 /dev/urandom >"$up/rpm/images/pxeboot/vmlinuz"
printf '[general]\nfamily = xenprov\n[checksums]\nimages/pxeboot/vmlinuz = sha256:%s\n' \
    "$(sha256sum <"$up/rpm/images/pxeboot/vmlinuz" | cut -d' ' -f1)" >"$up/rpm/.treeinfo"
curl -sf "$base/rpm/images/pxeboot/vmlinuz" -o "$T/rpm-vmlinuz" || fail "image named by .treeinfo"
cmp -s "$T/rpm-vmlinuz" "$up/rpm/images/pxeboot/vmlinuz" || fail "image named by .treeinfo differs"
# dnf does not fetch the "other" metadata: tamper with it upstream, then ask the cache for it
other=$(cd "$up/rpm" && ls repodata/*-other.xml.gz)
cp "$up/rpm/$other" "$T/other.orig"
printf 'X' | dd of="$up/rpm/$other" bs=1 seek=20 conv=notrunc status=none
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/rpm/$other")
[ "$code" = 502 ] || fail "tampered RPM metadata answered $code"
log_has "$other: expected sha256 .* not served" || fail "RPM metadata refusal not logged"

step "the ISO served in place to apt-get"
"$bin" list --config "$T/repo.toml" >"$T/list.txt"
grep -q '^iso dvd .*Rock Ridge names.*xenprov-test 1.0 (stable) amd64' "$T/list.txt" ||
    { cat "$T/list.txt"; fail "list does not show what the ISO is"; }
grep -q "^upstream deb ($upstream/debian): cache .*xenprov-test 1.0 (stable) amd64" "$T/list.txt" ||
    { cat "$T/list.txt"; fail "list does not show what the cache holds"; }
apt_root "$T/a2" "$base/dvd"
apt_update "$T/a2" || fail "apt-get update from the ISO"
(cd "$T/a2/download" && APT_CONFIG=$T/a2/apt.conf apt-get -q download xenprov-big xenprov-hello >/dev/null) ||
    fail "apt-get download from the ISO"
cmp -s "$T/a2/download/xenprov-big_1.0_all.deb" "$up/debian/pool/main/xenprov-big_1.0_all.deb" ||
    fail "package from the ISO differs"
curl -sf -r 1000-1999 "$base/dvd/pool/main/xenprov-big_1.0_all.deb" -o "$T/iso.range" || fail "range from the ISO"
cmp -s "$T/iso.range" <(tail -c +1001 "$up/debian/pool/main/xenprov-big_1.0_all.deb" | head -c 1000) ||
    fail "range from the ISO differs"

step "mirror: sync, publish, apt-get update in a loop across publishes"
"$bin" mirror mir --config "$T/repo.toml" >"$T/mirror1.out" 2>"$T/mirror1.log" || { cat "$T/mirror1.log"; fail "first mirror sync"; }
apt_root "$T/a3" "$base/mir"
sleep 1.2 # the server looks at the published pointer once a second
apt_update "$T/a3" || fail "apt-get update from the mirror"
(
    for i in $(seq 40); do
        apt_update "$T/a3" || { echo "apt-get update $i saw an error" >&2; exit 1; }
        sleep 0.1
    done
) >"$T/loop.log" 2>&1 &
loop_pid=$!
for n in 1 2 3; do
    bash "$helpers/apt-upstream.sh" add "$up/debian" "$T/keys" "xenprov-new$n" 100000
    "$bin" mirror mir --config "$T/repo.toml" >>"$T/mirror.out" 2>>"$T/mirror.log" || { cat "$T/mirror.log"; fail "mirror sync $n"; }
    sleep 1
done
wait "$loop_pid" || { cat "$T/loop.log"; fail "apt-get update during publishes"; }
sleep 1.2
apt_update "$T/a3" || fail "apt-get update after the last publish"
APT_CONFIG=$T/a3/apt.conf apt-cache policy xenprov-new3 >"$T/policy"
grep -q 'Candidate: 1.0' "$T/policy" || fail "last publish not visible"
cmp -s "$T/mirrors/mir/current/$images/netboot/xen/vmlinuz" "$up/debian/$images/netboot/xen/vmlinuz" ||
    fail "installer image not mirrored"
"$bin" list --config "$T/repo.toml" >"$T/list.txt"
grep -q "^mirror mir (.*): snapshot $(readlink "$T/mirrors/mir/current" | sed 's|.*/||') of 3 kept: xenprov-test" "$T/list.txt" ||
    { cat "$T/list.txt"; fail "list does not show the published snapshot"; }
snapshots=$(find "$T/mirrors/mir/snapshots" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$snapshots" -le 3 ] || fail "$snapshots snapshots kept, keep = 2"

step "an RPM mirror: refused while its metadata is tampered with, then published and used by dnf"
if "$bin" mirror rmir --config "$T/repo.toml" >/dev/null 2>"$T/rmir.log"; then fail "RPM mirror of tampered metadata published"; fi
grep -q "$other: expected sha256" "$T/rmir.log" || { cat "$T/rmir.log"; fail "RPM mirror refusal not explained"; }
cp "$T/other.orig" "$up/rpm/$other"
"$bin" mirror rmir --config "$T/repo.toml" >/dev/null 2>"$T/rmir.log" || { cat "$T/rmir.log"; fail "RPM mirror"; }
sleep 1.2
dnf_install "$T/dnf2" "$base/rmir" || fail "dnf install from the RPM mirror"
rpm --root "$T/dnf2/root" -q xenprov-big xenprov-hello >/dev/null || fail "packages from the RPM mirror not installed"
[ -f "$T/mirrors/rmir/current/repodata/repomd.xml.asc" ] || fail "RPM mirror published without repomd.xml.asc"

step "a keyring holding no public key is refused by name"
# a file of signatures only, as when the keyring points at a repository's Release.gpg
cat >"$T/nokey.toml" <<EOF
mirrors = "$T/nokey"

[[mirror]]
name = "nokey"
url = "$upstream/debian"
keyring = "$up/debian/dists/stable/Release.gpg"
suites = ["stable"]
EOF
if "$bin" mirror nokey --config "$T/nokey.toml" >/dev/null 2>"$T/nokey.log"; then fail "mirror synced with a keyring of signatures"; fi
grep -qF "no OpenPGP public key in $up/debian/dists/stable/Release.gpg: expected a binary keyring or an ASCII-armored" \
    "$T/nokey.log" || { cat "$T/nokey.log"; fail "keyring without a key not named"; }

step "an interrupted mirror sync resumes and never disturbs the published snapshot"
bash "$helpers/apt-upstream.sh" add "$up/debian" "$T/keys" xenprov-huge2 30000000
published=$(readlink "$T/mirrors/mir/current")
"$bin" mirror mir --config "$T/repo.toml" >/dev/null 2>"$T/mirror-cut.log" &
mirror_pid=$!
sleep 2
stop_upstream
if wait "$mirror_pid"; then fail "mirror sync succeeded with the upstream gone"; fi
grep -q 'nothing published' "$T/mirror-cut.log" || { cat "$T/mirror-cut.log"; fail "interrupted sync did not say so"; }
[ "$(readlink "$T/mirrors/mir/current")" = "$published" ] || fail "interrupted sync changed the published snapshot"
apt_update "$T/a3" || fail "apt-get update from the mirror after an interrupted sync"
start_upstream
"$bin" mirror mir --config "$T/repo.toml" >/dev/null 2>"$T/mirror-resume.log" || { cat "$T/mirror-resume.log"; fail "resumed sync"; }
grep -q '"GET /debian/pool/main/xenprov-huge2_1.0_all.deb HTTP/1.1" 206' "$T/nginx/access.log" ||
    fail "the interrupted sync's download was not resumed"
cmp -s "$T/mirrors/mir/current/pool/main/xenprov-huge2_1.0_all.deb" "$up/debian/pool/main/xenprov-huge2_1.0_all.deb" ||
    fail "mirrored huge2 differs"
echo "repo content: all checks passed"
