#!/usr/bin/env bash
# What a fleet netboot asks of the repo server: 16 hosts at once each fetching what the live initrd
# fetches (the kernel, the initrd, the live root and layer, the payload's manifest, archive and
# packages), from the install ISO served in place by xenprov-repo, against nginx serving the same files
# extracted from that ISO. Each round runs 16 clients (curl, one connection each, the files one after
# another, as the initrd's wget does), rounds alternate between the servers; the medians of the
# aggregate MB/s are compared, and the peak resident memory of each server (VmHWM; nginx: master and
# workers summed) is reported. Loopback only.
#
# Usage: bench/fleet-netboot.sh [--iso FILE] [--hosts N] [--rounds N]   (default out/e2e/xenprov.iso, 16, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/deps.sh

iso=out/e2e/xenprov.iso hosts=16 rounds=3
while [ $# -gt 0 ]; do
    case $1 in
    --iso) iso=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--iso FILE] [--hosts N] [--rounds N]" >&2; exit 2 ;;
    esac
done
[ -s "$iso" ] || { echo "no ISO at $iso: build it with tests/e2e/install.sh (or xenprov-image iso)" >&2; exit 1; }
need_cargo
need_pkgs nginx curl xorriso
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo

. tests/lib/servers.sh
scratch_init
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# The files a netboot fetches: the boot pair, then every file of the medium the initrd's list names.
files=(boot/vmlinuz boot/initrd.img)
mkdir -p "$T/files"
xorriso -osirrox on -indev "$iso" -extract /boot "$T/files/boot" -extract /live "$T/files/live" \
    -extract /xenprov "$T/files/xenprov" >/dev/null 2>&1
while read -r f; do files+=("$f"); done < <(cd "$T/files" && find live xenprov -type f | sort)
bytes=0
for f in "${files[@]}"; do bytes=$((bytes + $(stat -c %s "$T/files/$f"))); done
echo "--- per host: ${#files[@]} files, $((bytes / 1048576)) MiB; $hosts hosts at once"

mkdir -p "$T/empty" # ours serves the ISO itself, mounted at /xenprov; its root is empty
"$bin" serve --root "$T/empty" --listen 127.0.0.1:0 --iso "xenprov=$PWD/$iso" 2>"$T/server.log" &
ours=$!
pids+=("$ours")
server_address "$ours"
ours_base=$base/xenprov
nginx_port=$(free_port)
nginx_conf "server { listen 127.0.0.1:$nginx_port; root $T/files; }"
nginx_start
sleep 1
nginx_base=http://127.0.0.1:$nginx_port

# One round: $hosts clients at once, each fetching every file; prints the aggregate MB/s.
round() {
    local base=$1 start end i p clients=() failed=0
    start=$(date +%s.%N)
    for ((i = 0; i < hosts; i++)); do
        (for f in "${files[@]}"; do curl -sSf -o /dev/null "$base/$f" || exit 1; done) &
        clients+=($!)
    done
    # Each client by its PID: with `wait -n` here, 2 runs in 5 failed a round in which no curl
    # reported an error.
    for p in "${clients[@]}"; do wait "$p" || failed=1; done
    end=$(date +%s.%N)
    [ "$failed" = 0 ] || { echo "a client failed against $base" >&2; exit 1; }
    echo "$start $end" | awk -v b="$bytes" -v h="$hosts" '{ printf "%.1f\n", b * h / ($2 - $1) / 1e6 }'
}

for f in "${files[@]}"; do cmp -s <(curl -sf "$ours_base/$f") "$T/files/$f" || { echo "$f differs through xenprov-repo" >&2; exit 1; }; done
find "$T/files" -type f -exec cat {} + >/dev/null # both read from a warm page cache
ours_mbs=() nginx_mbs=()
for ((r = 1; r <= rounds; r++)); do
    o=$(round "$ours_base")
    n=$(round "$nginx_base")
    echo "round $r: xenprov-repo $o MB/s, nginx $n MB/s"
    ours_mbs+=("$o") nginx_mbs+=("$n")
done
o=$(printf '%s\n' "${ours_mbs[@]}" | median)
n=$(printf '%s\n' "${nginx_mbs[@]}" | median)
nginx_hwm=0
for p in "$nginx_pid" $(pgrep -P "$nginx_pid"); do
    nginx_hwm=$((nginx_hwm + $(hwm_kib "$p")))
done
echo "xenprov-repo: $o MB/s (median of $rounds), peak RSS $(($(hwm_kib "$ours") / 1024)) MiB"
echo "nginx:        $n MB/s (median of $rounds), peak RSS $((nginx_hwm / 1024)) MiB (master and workers)"
echo "ratio xenprov-repo / nginx: $(echo "$o $n" | awk '{ printf "%.2f", $1 / $2 }')"
