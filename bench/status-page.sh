#!/usr/bin/env bash
# Figures of the status page, each from one run on this machine, with a test registry (tests/status/state.sh):
# 1. /metrics and /api/status with 100 guests, through the real server, against nginx serving the same bytes
#    as files (wrk -t1 -c4, rounds alternating, medians of req/s); the cost of one scrape is 1 / its rate.
# 2. The page with 1,000 guests in headless Chromium: load, first contentful paint, bytes, and the cost of
#    one update (fetch, parse and swap of the page's <main>), as the page's own script measures it.
# No Xen here: the guests are the registry's; with N domains running, benches/status_routes (in process)
# adds their series.
# Usage: bench/status-page.sh [--duration SECONDS] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/deps.sh
duration=5 rounds=3
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECONDS] [--rounds N]" >&2; exit 2 ;;
    esac
done
need_cargo
need_pkgs nginx wrk curl xorriso bc chromium chromium-driver python3-selenium
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo
. tests/lib/servers.sh
. tests/status/state.sh
scratch_init

serve() { # GUESTS: the server on the state with that many guests; sets base
    status_state "$(($1 - 3))"
    "$bin" serve --listen 127.0.0.1:0 "${ARGS[@]}" 2>"$T/server.log" &
    pids+=("$!")
    server_address "$!"
}

echo "=== /metrics and /api/status with 100 guests, against nginx on the same bytes"
serve 100
www=$T/www
mkdir -p "$www"
curl -sf "$base/metrics" >"$www/metrics"
curl -sf "$base/api/status" >"$www/status.json"
nginx_port=$(free_port)
nginx_conf "server { listen 127.0.0.1:$nginx_port; root $www; }"
nginx_start
sleep 0.5
rate() { # URL -> requests per second
    wrk -t1 -c4 -d"${duration}s" "$1" >"$T/wrk.out"
    if grep -q "Non-2xx\|Socket errors" "$T/wrk.out"; then cat "$T/wrk.out" >&2; exit 1; fi
    awk '/^Requests\/sec/ { print $2 }' "$T/wrk.out"
}
for spec in "/metrics:/metrics" "/api/status:/status.json"; do
    ours_path=${spec%%:*} file=${spec#*:}
    : >"$T/ours" && : >"$T/theirs"
    for _ in $(seq "$rounds"); do
        rate "$base$ours_path" >>"$T/ours"
        rate "http://127.0.0.1:$nginx_port$file" >>"$T/theirs"
    done
    o=$(median <"$T/ours") t=$(median <"$T/theirs")
    printf '%-12s %7s bytes  xenprov-repo %8.0f req/s (%.2f ms each)  nginx (same bytes) %8.0f req/s  ratio %.3f\n' \
        "$ours_path" "$(wc -c <"$www/${file#/}")" "$o" "$(echo "4000 / $o" | bc -l)" "$t" "$(echo "$o / $t" | bc -l)"
done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

echo "=== the page with 1,000 guests in Chromium"
rm -rf "${T:?}"/registry "$T"/hosts "$T"/state
serve 1000
/usr/bin/python3 tests/status/browser.py "$base" /dev/null "$T/shots" bench
