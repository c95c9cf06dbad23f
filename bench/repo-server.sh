#!/usr/bin/env bash
# xenprov-repo against nginx (sendfile on) on the same files in the same run, loopback only, with wrk at 64
# connections: 1 KiB files (req/s), 8 MiB files (req/s), one 256 MiB file (MB/s). Rounds alternate between
# the two servers and the medians are compared, so that load from elsewhere on the machine hits both.
# "per CPU-s" compares the work each server does per CPU second it uses, which load elsewhere on the machine
# does not skew. Then this server's peak RSS under that load, and the latency of a normal request while hundreds of
# clients trickle headers and while thousands of idle connections are open.
#
# Usage: bench/repo-server.sh [--duration SECONDS] [--rounds N] [--access-log] [--no-sendfile]
#   --access-log   both servers write an access log line per request to a file (default: neither does)
#   --no-sendfile  run xenprov-repo with sendfile off (reads on the blocking pool), nginx unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/deps.sh

duration=10 rounds=3 access_log=false sendfile=true
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --access-log) access_log=true; shift ;;
    --no-sendfile) sendfile=false; shift ;;
    *) echo "usage: $0 [--duration SECONDS] [--rounds N] [--access-log] [--no-sendfile]" >&2; exit 2 ;;
    esac
done

need_cargo
need_pkgs nginx wrk python3 bc curl
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo
clients=$PWD/tests/repo-server/clients.py

. tests/lib/servers.sh
scratch_init

www=$T/www
mkdir -p "$www/small" "$www/medium" "$www/large"
for i in $(seq 64); do head -c 1024 /dev/urandom >"$www/small/$i.bin"; done
for i in $(seq 16); do head -c $((8 << 20)) /dev/urandom >"$www/medium/$i.bin"; done
head -c $((256 << 20)) /dev/urandom >"$www/large/1.bin"
# wrk requests the files of a size in turn.
cat >"$T/rotate.lua" <<'EOF'
local dir, count = os.getenv("WRK_DIR"), tonumber(os.getenv("WRK_COUNT"))
local i = 0
request = function()
    i = i % count + 1
    return wrk.format("GET", "/" .. dir .. "/" .. i .. ".bin")
end
EOF

nginx_port=$(free_port)
if $access_log; then nginx_log="access_log $T/nginx/access.log;"; else nginx_log="access_log off;"; fi
nginx_conf "server { listen 127.0.0.1:$nginx_port; root $www; }" "$nginx_log"
nginx_start

ours_port=$(free_port)
"$bin" serve --root "$www" --listen "127.0.0.1:$ours_port" --access-log "$access_log" --sendfile "$sendfile" \
    --header-read-timeout 10s --idle-timeout 20s \
    2>"$T/ours.log" &
ours=$!
pids+=("$ours")
for port in "$nginx_port" "$ours_port"; do
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/small/1.bin" && break; sleep 0.1; done
done

# Peak RSS of our server, sampled while the load runs (VmHWM would include page-cache-free startup noise too).
rss_peak=$T/rss.peak
echo 0 >"$rss_peak"
(
    peak=0
    while kill -0 "$ours" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$ours/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" >"$rss_peak"
        sleep 0.2
    done
) &
pids+=($!)

# CPU time (clock ticks) used so far by the given processes, all their threads included.
cpu_ticks() { cat "${@/#//proc/}" 2>/dev/null | awk '{ t += $14 + $15 } END { print t + 0 }'; }
server_pids() { if [ "$1" = "$nginx_port" ]; then pgrep -P "$nginx_pid"; else echo "$ours"; fi; }

# wrk_run PORT DIR COUNT -> "requests_per_second bytes_per_second server_cpu_ticks"
wrk_run() {
    local stats
    mapfile -t stats < <(server_pids "$1" | sed 's|$|/stat|')
    local before
    before=$(cpu_ticks "${stats[@]}")
    WRK_DIR=$2 WRK_COUNT=$3 wrk -t2 -c64 -d"${duration}s" --timeout 120s -s "$T/rotate.lua" "http://127.0.0.1:$1" >"$T/wrk.out"
    if grep -q "Non-2xx\|Socket errors" "$T/wrk.out"; then
        echo "wrk saw errors from port $1 on /$2:" >&2
        cat "$T/wrk.out" >&2
        exit 1
    fi
    awk '/^Requests\/sec/ { rps = $2 }
             /^Transfer\/sec/ { v = $2; u = substr(v, length(v) - 1); v = substr(v, 1, length(v) - 2)
                                m = (u == "GB") ? 1073741824 : (u == "MB") ? 1048576 : (u == "KB") ? 1024 : 1
                                bps = v * m }
             END { printf "%s %.0f ", rps, bps }' "$T/wrk.out"
    echo $(($(cpu_ticks "${stats[@]}") - before))
}

echo "duration ${duration}s x $rounds rounds per server and size, wrk -t2 -c64, access log: $access_log, sendfile: $sendfile"
printf '%-22s %14s %14s %8s %12s\n' "" nginx xenprov-repo ratio "per CPU-s"
results=()
for spec in "1 KiB files:small:64:rps" "8 MiB files:medium:16:rps" "256 MiB file:large:1:bps"; do
    IFS=: read -r label dir count metric <<<"$spec"
    : >"$T/nginx.vals"
    : >"$T/ours.vals"
    : >"$T/ratios"
    : >"$T/efficiency"
    for _ in $(seq "$rounds"); do
        read -r n_rps n_bps n_cpu < <(wrk_run "$nginx_port" "$dir" "$count")
        read -r o_rps o_bps o_cpu < <(wrk_run "$ours_port" "$dir" "$count")
        if [ "$metric" = rps ]; then n=$n_rps o=$o_rps; else n=$(echo "$n_bps / 1000000" | bc -l) o=$(echo "$o_bps / 1000000" | bc -l); fi
        echo "$n" >>"$T/nginx.vals"
        echo "$o" >>"$T/ours.vals"
        echo "$o / $n" | bc -l >>"$T/ratios"
        # work done per CPU second of the server itself: independent of how busy the rest of the machine is
        echo "($o / ($o_cpu + 1)) / ($n / ($n_cpu + 1))" | bc -l >>"$T/efficiency"
    done
    unit=$([ "$metric" = rps ] && echo "req/s" || echo "MB/s")
    n=$(median <"$T/nginx.vals") o=$(median <"$T/ours.vals") r=$(median <"$T/ratios") e=$(median <"$T/efficiency")
    printf '%-22s %9.0f %-4s %9.0f %-4s %7.2fx %11.2fx\n' "$label" "$n" "$unit" "$o" "$unit" "$r" "$e"
    results+=("$label: $(printf '%.2f' "$r")x")
done
echo "xenprov-repo peak RSS under load: $(( $(cat "$rss_peak") / 1024 )) MiB"

echo "latency of a normal request (xenprov-repo):"
ulimit -n 16384
python3 "$clients" --port "$ours_port" slow --count 500 --seconds 20 --max-latency 1 --probe /small/1.bin | sed 's/^/  /'
python3 "$clients" --port "$ours_port" idle --count 5000 --seconds 30 --max-latency 1 --probe /small/1.bin | sed 's/^/  /'
echo "ratios (median of per-round xenprov-repo/nginx): ${results[*]}"
