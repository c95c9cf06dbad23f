#!/usr/bin/env bash
# The repo server against real clients: apt-get (signed InRelease, by-hash, If-Range resume), dnf
# --installroot, zckdl (zchunk delta download: librepo's multi-range requests), curl (HEAD, ranges,
# resume, 416, 304, HTTP/2, listings); raw-socket checks for hostile paths, pipelining, oversized headers,
# slow and idle clients; graceful shutdown on SIGTERM. Loopback only; everything it starts is stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_cargo
need_pkgs curl apt-utils dpkg-dev gnupg xz-utils rpm createrepo-c dnf zchunk python3
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo
helpers=$PWD/tests/repo-server

T=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "FAIL: ${BASH_SOURCE[0]} line $LINENO: $BASH_COMMAND" >&2' ERR

. tests/lib/servers.sh # fail, step, log_count, log_has (on $T/server.log)
header() { tr -d '\r' <"$1" | awk -v h="$2" 'tolower($1) == tolower(h) ":" { $1 = ""; sub(/^ /, ""); print }'; }

# The served tree, a file next to it that must never be served, and symlinks that try to reach it.
srv=$T/srv
canary="xenprov-canary-$RANDOM$RANDOM"
mkdir -p "$srv/curl"
echo "$canary" >"$T/canary.txt"
ln -s ../canary.txt "$srv/escape-rel"
ln -s "$T/canary.txt" "$srv/escape-abs"
ln -s "$T" "$srv/escape-dir"
ln -s escape-rel "$srv/escape-chain"
head -c $((64 << 20)) /dev/urandom >"$srv/curl/big.img"
size=$(stat -c %s "$srv/curl/big.img")
echo "small file for curl" >"$srv/curl/small.txt"
echo "hidden" >"$srv/curl/.hidden"
mkdir -p "$srv/curl/dir with space"
echo unicode >"$srv/curl/dir with space/ünïcode.txt"

step "building repositories"
bash "$helpers/build-apt-repo.sh" "$srv/debian" "$T/keys"
bash "$helpers/build-rpm-repo.sh" "$srv/rpm"

# Short timeouts so that the slow-client checks finish quickly.
"$bin" serve --root "$srv" --listen 127.0.0.1:0 --header-read-timeout 3s --idle-timeout 4s \
    --shutdown-timeout 30s 2>"$T/server.log" &
server_pid=$!
server_address "$server_pid"
[ "$(curl -sf "$base/healthz")" = ok ] || fail "/healthz"

step "apt-get update and download from a signed repository"
apt_dir=$T/apt
apt_root "$apt_dir" "$base/debian"
export APT_CONFIG=$apt_dir/apt.conf
apt-get -q update >"$T/apt-update.log" 2>&1 || { cat "$T/apt-update.log"; fail "apt-get update"; }
grep -q '^W:\|^E:' "$T/apt-update.log" && { cat "$T/apt-update.log"; fail "apt-get update warned"; }
log_has "path=/debian/dists/stable/InRelease status=200" || fail "apt did not fetch InRelease"
log_has "path=/debian/dists/stable/main/binary-amd64/by-hash/SHA" || fail "apt did not use by-hash"
(cd "$apt_dir/download" && apt-get -q download xenprov-hello xenprov-big >/dev/null) || fail "apt-get download"
for deb in xenprov-hello_1.0_all.deb xenprov-big_1.0_all.deb; do
    cmp -s "$apt_dir/download/$deb" "$srv/debian/pool/main/$deb" || fail "apt downloaded a different $deb"
done
# A partial download with the server's date: apt resumes with Range and If-Range, then checks the hash.
big_deb=$srv/debian/pool/main/xenprov-big_1.0_all.deb
head -c 1000000 "$big_deb" >"$apt_dir/cache/archives/partial/xenprov-big_1.0_all.deb"
touch -r "$big_deb" "$apt_dir/cache/archives/partial/xenprov-big_1.0_all.deb"
apt-get -q -y -d install xenprov-big >"$T/apt-install.log" 2>&1 || { cat "$T/apt-install.log"; fail "apt resume"; }
cmp -s "$apt_dir/cache/archives/xenprov-big_1.0_all.deb" "$big_deb" || fail "apt resumed download differs"
log_has "path=/debian/pool/main/xenprov-big_1.0_all.deb status=206" || fail "apt did not resume with a range"
unset APT_CONFIG

step "dnf install --installroot"
dnf_install "$T/dnf" "$base/rpm" || fail "dnf install"
rpm --root "$T/dnf/root" -q xenprov-big xenprov-hello >/dev/null || fail "packages not in the installroot's rpmdb"
[ "$(cat "$T/dnf/root/usr/share/xenprov-hello/hello.txt")" = "hello from xenprov" ] || fail "xenprov-hello content"
[ "$(stat -c %s "$T/dnf/root/usr/share/xenprov-big/blob")" = 3145728 ] || fail "xenprov-big payload"
log_has "path=/rpm/repodata/repomd.xml status=200" || fail "dnf did not fetch repomd.xml"

step "zchunk delta download (multi-range requests)"
mkdir -p "$srv/zck" "$T/zck"
seq -f "package-%g version 1.0 release 1 summary padding padding padding" 1 100000 >"$T/zck/v1.txt"
sed '0~9000 s/$/ changed/' "$T/zck/v1.txt" >"$T/zck/v2.txt"
(cd "$T/zck" && zck v1.txt && zck v2.txt) >/dev/null
mv "$T/zck/v2.txt.zck" "$srv/zck/"
mkdir "$T/zck/dl" && cp "$T/zck/v1.txt.zck" "$T/zck/dl/"
(cd "$T/zck/dl" && zckdl --fail-no-ranges -s v1.txt.zck "$base/zck/v2.txt.zck") >"$T/zckdl.log" 2>&1 ||
    { cat "$T/zckdl.log"; fail "zckdl"; }
unzck -c "$T/zck/dl/v2.txt.zck" 2>/dev/null | cmp -s - "$T/zck/v2.txt" || fail "zchunk result differs"
ranged=$(log_count "path=/zck/v2.txt.zck status=206" 2)
[ "$ranged" -ge 2 ] || fail "zckdl made $ranged range requests"
downloaded=$(sed -n 's/^Downloaded \([0-9]*\) bytes/\1/p' "$T/zckdl.log")
zsize=$(stat -c %s "$srv/zck/v2.txt.zck")
[ "$downloaded" -lt $((zsize / 2)) ] || fail "delta download fetched $downloaded of $zsize bytes"

step "curl: full bodies, HEAD, ranges, resume, 416, 304, HTTP/2, listings"
curl -sf "$base/curl/big.img" -o "$T/big.h1" && cmp -s "$T/big.h1" "$srv/curl/big.img" || fail "GET (HTTP/1.1)"
curl -sf --http2-prior-knowledge "$base/curl/big.img" -o "$T/big.h2" && cmp -s "$T/big.h2" "$srv/curl/big.img" ||
    fail "GET (HTTP/2)"
curl -sfI "$base/curl/big.img" -o "$T/head.hdr" || fail "HEAD"
[ "$(header "$T/head.hdr" content-length)" = "$size" ] || fail "HEAD Content-Length"
curl -sf -r 1000-1999 "$base/curl/big.img" -o "$T/range" || fail "single range"
cmp -s "$T/range" <(tail -c +1001 "$srv/curl/big.img" | head -c 1000) || fail "single range content"
curl -sf -r -777 "$base/curl/big.img" -o "$T/suffix" && cmp -s "$T/suffix" <(tail -c 777 "$srv/curl/big.img") ||
    fail "suffix range"
curl -sf --http2-prior-knowledge -r 5000000- "$base/curl/big.img" -o "$T/open" &&
    cmp -s "$T/open" <(tail -c +5000001 "$srv/curl/big.img") || fail "open range over HTTP/2"
head -c 12345678 "$srv/curl/big.img" >"$T/resumed"
curl -sf -C - "$base/curl/big.img" -o "$T/resumed" && cmp -s "$T/resumed" "$srv/curl/big.img" || fail "curl -C - resume"
curl -s -D "$T/multi.hdr" -r 0-9,1000000-1000009,-10 "$base/curl/big.img" -o "$T/multi" || fail "multiple ranges"
header "$T/multi.hdr" content-type | grep -q '^multipart/byteranges; boundary=' || fail "multipart content type"
[ "$(header "$T/multi.hdr" content-length)" = "$(stat -c %s "$T/multi")" ] || fail "multipart Content-Length"
grep -qa "Content-Range: bytes 1000000-1000009/$size" "$T/multi" || fail "multipart part header"
code=$(curl -s -D "$T/416.hdr" -o /dev/null -w '%{http_code}' -r "$size-" "$base/curl/big.img")
[ "$code" = 416 ] && [ "$(header "$T/416.hdr" content-range)" = "bytes */$size" ] || fail "416 ($code)"
etag=$(header "$T/head.hdr" etag)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$base/curl/big.img")
[ "$code" = 304 ] || fail "If-None-Match gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $(header "$T/head.hdr" last-modified)" \
    "$base/curl/small.txt")
[ "$code" = 304 ] || fail "If-Modified-Since gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/debian")
[ "$code" = 301 ] || fail "directory without slash gave $code"
curl -sf "$base/curl/" | grep -q 'href="dir%20with%20space/"' || fail "HTML listing"
curl -sf -H 'Accept: application/json' "$base/curl/dir%20with%20space/" |
    python3 -c 'import json, sys; e = json.load(sys.stdin); assert e[0]["name"] == "ünïcode.txt" and e[0]["size"] == 8, e' ||
    fail "JSON listing"
curl -sf "$base/curl/" | grep -q '.hidden' && fail "hidden file listed"
[ "$(curl -sf "$base/curl/dir%20with%20space/%C3%BCn%C3%AFcode.txt")" = unicode ] || fail "percent-encoded Unicode name"

step "raw clients: hostile paths, pipelining, oversized headers"
python3 "$helpers/clients.py" --port "$port" hostile --corpus "$helpers/hostile-paths.txt" --canary "$canary" ||
    fail "hostile paths"
python3 "$helpers/clients.py" --port "$port" pipeline --small "$srv/curl/small.txt" --big-size "$size" ||
    fail "pipelining"
python3 "$helpers/clients.py" --port "$port" oversized || fail "oversized headers"

step "slow and idle clients"
ulimit -n 8192
python3 "$helpers/clients.py" --port "$port" slow --count 300 --seconds 10 || fail "slow clients"
python3 "$helpers/clients.py" --port "$port" idle --count 2000 --seconds 15 || fail "idle clients"

step "metrics"
curl -sf "$base/metrics" -o "$T/metrics" || fail "/metrics"
for status in 200 206 301 304 400 404 416; do
    grep -q "^xenprov_repo_requests_total{status=\"$status\"} [1-9]" "$T/metrics" || fail "no $status in /metrics"
done
for kind in header_too_large header_timeout; do
    grep -q "^xenprov_repo_connection_errors_total{kind=\"$kind\"} [1-9]" "$T/metrics" || fail "no $kind in /metrics"
done
grep -q '^xenprov_repo_response_bytes_total [1-9]' "$T/metrics" || fail "bytes in /metrics"

step "SIGTERM: a download in progress finishes, then the server exits"
curl -sf --limit-rate 20M "$base/curl/big.img" -o "$T/big.slow" &
curl_pid=$!
sleep 1
kill -TERM "$server_pid"
wait "$curl_pid" || fail "download cut by shutdown"
cmp -s "$T/big.slow" "$srv/curl/big.img" || fail "download during shutdown differs"
status=0
wait "$server_pid" || status=$?
server_pid=
[ "$status" = 0 ] || fail "server exited with $status"
log_has "SIGTERM received" || fail "no shutdown message"
echo "repo server: all checks passed"
