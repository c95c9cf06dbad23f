#!/usr/bin/env bash
# Figures of the repo content work, each from one run on this machine:
# 1. SHA-256 throughput of the verifying cache's digest code (`xenprov-repo sha256`) against `sha256sum`
#    on the same file, warm in the page cache, rounds alternating, medians compared.
# 2. Cache hits against nginx on the same files: a signed local APT upstream (nginx) with packages of
#    20 KiB (200 bytes of payload in uncompressed tars) and of 8 MiB; xenprov-repo serves it through its
#    cache (warmed first), nginx serves the upstream tree; wrk -t2 -c64 alternates between the two,
#    medians of req/s and of work per server CPU-second.
# 3. Installs through the cache: debootstrap --variant=minbase of a local copy of real Debian packages
#    (fetched once with apt-get download into a signed local repository behind a rate-limited nginx, as
#    a remote mirror would be): its fetch phase with a cold cache, again with the cache warm, and a whole
#    install with the cache warm (a second guest's install after the first).
#
# Usage: bench/repo-content.sh [--size MIB] [--duration SECONDS] [--rounds N] [--no-install] [--rate RATE]
#   --rate   the upstream's bandwidth for the install figure, in nginx limit_rate form (default 4m = 4 MB/s)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/deps.sh

size=1024 duration=10 rounds=3 install=true rate=4m
while [ $# -gt 0 ]; do
    case $1 in
    --size) size=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --no-install) install=false; shift ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "usage: $0 [--size MIB] [--duration SECONDS] [--rounds N] [--no-install] [--rate RATE]" >&2; exit 2 ;;
    esac
done

need_cargo
need_pkgs nginx wrk python3 bc curl apt-utils dpkg-dev gnupg gpgv xz-utils debootstrap
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo
helpers=$PWD/tests/repo-content

. tests/lib/servers.sh
scratch_init
seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc -l; }

echo "=== SHA-256 of a $size MiB file (page cache warm), $rounds rounds"
head -c $((size << 20)) /dev/urandom >"$T/blob"
cat "$T/blob" >/dev/null
[ "$(sha256sum "$T/blob" | cut -d' ' -f1)" = "$("$bin" sha256 "$T/blob" | cut -d' ' -f1)" ] ||
    { echo "digests differ" >&2; exit 1; }
: >"$T/sha.ratio"
for _ in $(seq "$rounds"); do
    theirs=$(seconds sha256sum "$T/blob")
    ours=$(seconds "$bin" sha256 "$T/blob")
    echo "$theirs / $ours" | bc -l >>"$T/sha.ratio"
    printf '  sha256sum %6.0f MB/s   xenprov-repo sha256 %6.0f MB/s\n' \
        "$(echo "$size * 1.048576 / $theirs" | bc -l)" "$(echo "$size * 1.048576 / $ours" | bc -l)"
done
sha_ratio=$(median <"$T/sha.ratio")
printf 'SHA-256 throughput, xenprov-repo / sha256sum (median): %.2fx\n' "$sha_ratio"
rm -f "$T/blob"

echo "=== cache hits against nginx on the same files"
up=$T/up
bash "$helpers/apt-upstream.sh" empty "$up/debian" "$T/keys"
bash "$helpers/apt-upstream.sh" many "$up/debian" "$T/keys" small 64 200 >/dev/null
bash "$helpers/apt-upstream.sh" many "$up/debian" "$T/keys" medium 16 $((8 << 20)) >/dev/null
nginx_port=$(free_port)
slow_port=$(free_port)
mkdir -p "$T/slow"
nginx_conf "server { listen 127.0.0.1:$nginx_port; root $up; }
    server { listen 127.0.0.1:$slow_port; root $T/slow; limit_rate $rate; }"
nginx_start
ours_port=$(free_port)
mkdir -p "$T/root"
cat >"$T/repo.toml" <<EOF
root = "$T/root"
listen = "127.0.0.1:$ours_port"
cache = "$T/cache"
keyring = "$T/keys/key.gpg"
access-log = false

[[upstream]]
name = "deb"
url = "http://127.0.0.1:$nginx_port/debian"
metadata-ttl = "1h"

[[upstream]]
name = "slow"
url = "http://127.0.0.1:$slow_port/debian"
EOF
"$bin" serve --config "$T/repo.toml" 2>"$T/ours.log" &
ours=$!
pids+=("$ours")
for port in "$nginx_port" "$ours_port"; do
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
# warm the cache: the Release, then the index, then every package once
curl -sf -o /dev/null "http://127.0.0.1:$ours_port/deb/dists/stable/InRelease"
curl -sf -o /dev/null "http://127.0.0.1:$ours_port/deb/dists/stable/main/binary-amd64/Packages.xz"
for f in "$up"/debian/pool/main/*.deb; do
    name=$(basename "$f")
    curl -sf "http://127.0.0.1:$ours_port/deb/pool/main/$name" -o "$T/check.deb"
    cmp -s "$T/check.deb" "$f" || { echo "cache served a different $name" >&2; exit 1; }
done
# wrk requests the packages of a size in turn
cat >"$T/rotate.lua" <<'EOF'
local prefix, count = os.getenv("WRK_PREFIX"), tonumber(os.getenv("WRK_COUNT"))
local i = 0
request = function()
    i = i % count + 1
    return wrk.format("GET", prefix .. i .. "_1.0_all.deb")
end
EOF
cpu_ticks() { cat "${@/#//proc/}" 2>/dev/null | awk '{ t += $14 + $15 } END { print t + 0 }'; }
# wrk_run PORT PATH_PREFIX COUNT -> "requests_per_second server_cpu_ticks"
wrk_run() {
    local stats before
    if [ "$1" = "$nginx_port" ]; then mapfile -t stats < <(pgrep -P "$nginx_pid" | sed 's|$|/stat|'); else stats=("$ours/stat"); fi
    before=$(cpu_ticks "${stats[@]}")
    WRK_PREFIX=$2 WRK_COUNT=$3 wrk -t2 -c64 -d"${duration}s" --timeout 60s -s "$T/rotate.lua" "http://127.0.0.1:$1" >"$T/wrk.out"
    if grep -q "Non-2xx\|Socket errors" "$T/wrk.out"; then cat "$T/wrk.out" >&2; exit 1; fi
    echo "$(awk '/^Requests\/sec/ { print $2 }' "$T/wrk.out") $(($(cpu_ticks "${stats[@]}") - before))"
}
printf '%-20s %12s %12s %8s %10s\n' "" nginx cache-hits ratio "per CPU-s"
hit_results=()
for spec in "packages of 20 KiB:small:64" "packages of 8 MiB:medium:16"; do
    IFS=: read -r label prefix count <<<"$spec"
    : >"$T/n" ; : >"$T/o"; : >"$T/r"; : >"$T/e"
    for _ in $(seq "$rounds"); do
        read -r n n_cpu < <(wrk_run "$nginx_port" "/debian/pool/main/$prefix" "$count")
        read -r o o_cpu < <(wrk_run "$ours_port" "/deb/pool/main/$prefix" "$count")
        echo "$n" >>"$T/n"; echo "$o" >>"$T/o"
        echo "$o / $n" | bc -l >>"$T/r"
        echo "($o / ($o_cpu + 1)) / ($n / ($n_cpu + 1))" | bc -l >>"$T/e"
    done
    r=$(median <"$T/r")
    printf '%-20s %8.0f r/s %8.0f r/s %7.2fx %9.2fx\n' "$label" "$(median <"$T/n")" "$(median <"$T/o")" "$r" "$(median <"$T/e")"
    hit_results+=("$label: $(printf '%.2f' "$r")x")
done

install_result="not measured (--no-install)"
if $install; then
    echo "=== installs through the cache: debootstrap --variant=minbase, upstream limited to $rate/s"
    # real Debian packages: the minbase set of this machine's release, fetched once with apt-get download
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mkdir -p "$T/debs"
    pkgs=$(python3 "$helpers/minbase.py")
    # shellcheck disable=SC2086 # one word per package
    (cd "$T/debs" && apt-get -q -o APT::Sandbox::User=root download $pkgs >/dev/null) || { echo "apt-get download failed" >&2; exit 1; }
    repo=$T/slow/debian
    mkdir -p "$repo/pool/main" "$repo/dists/$codename/main/binary-amd64"
    # apt-get download writes an epoch's colon as %3a; give the files their real names
    for f in "$T"/debs/*.deb; do mv "$f" "$repo/pool/main/$(basename "$f" | sed 's/%3a/:/')"; done
    (
        cd "$repo"
        apt-ftparchive packages pool/main >"dists/$codename/main/binary-amd64/Packages"
        gzip -k "dists/$codename/main/binary-amd64/Packages"
        apt-ftparchive -o APT::FTPArchive::Release::Suite="$codename" -o APT::FTPArchive::Release::Codename="$codename" \
            -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures=amd64 \
            release "dists/$codename" >"$T/Release"
        mv "$T/Release" "dists/$codename/Release"
        GNUPGHOME=$T/keys/gnupg gpg --batch --yes --clearsign -o "dists/$codename/InRelease" "dists/$codename/Release"
    )
    echo "  $(find "$repo/pool/main" -mindepth 1 -maxdepth 1 | wc -l) packages, $(du -sh "$repo/pool" | cut -f1)"
    # run LABEL [debootstrap options]: seconds for a debootstrap through the cache into a fresh target
    run() {
        local label=$1 start t
        shift
        rm -rf "$T/target"
        start=$(date +%s.%N)
        debootstrap "$@" --variant=minbase --keyring="$T/keys/key.gpg" "$codename" "$T/target" \
            "http://127.0.0.1:$ours_port/slow" >"$T/debootstrap.log" 2>&1 ||
            { tail -20 "$T/debootstrap.log" >&2; exit 1; }
        t=$(echo "$(date +%s.%N) - $start" | bc -l)
        printf '  %-40s %6.1f s\n' "$label" "$t" >&2
        echo "$t"
    }
    # the download phase is what the cache changes; a whole install adds unpacking and configuring
    cold=$(run "fetch, cold cache (--download-only)" --download-only)
    warm=$(run "fetch, warm cache (--download-only)" --download-only)
    full=$(run "whole install, warm cache")
    install_result=$(printf 'fetch phase %.1f s cold, %.1f s warm (%.1fx); whole second install %.1f s' \
        "$cold" "$warm" "$(echo "$cold / $warm" | bc -l)" "$full")
fi

echo "=== figures"
printf 'SHA-256: %.2fx sha256sum\n' "$sha_ratio"
echo "cache hits vs nginx: ${hit_results[*]}"
echo "debootstrap through the cache, upstream at $rate/s: $install_result"
