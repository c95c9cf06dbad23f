#!/usr/bin/env bash
# The status page in a real browser: headless Chromium (Debian's) against the real server with a
# guest registry, a fleet and an ISO in known states (tests/status/state.sh). It loads with no
# console error, shows them, follows install events without a reload, passes axe-core with nothing
# serious, and reads without JavaScript; /api/status and /metrics say the same; no password hash,
# token or upstream password on any of them or in the log. Screenshots are kept in out/status/.
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
need_cargo
need_pkgs curl xorriso jq chromium chromium-driver python3-selenium
cargo build --release -p xenprov-repo
bin=$PWD/target/release/xenprov-repo

. tests/lib/servers.sh # scratch_init, fail, step, server_address
. tests/status/state.sh
scratch_init
axe=$(bash tests/status/axe.sh)
status_state 3

"$bin" serve --listen 127.0.0.1:0 "${ARGS[@]}" 2>"$T/server.log" &
pids+=("$!")
server_address "$!"

step "/api/status and /metrics say what the registry, the fleet and the ISO hold"
curl -sf "$base/api/status" >"$T/status.json" || fail "/api/status does not answer"
[ "$(jq -r '.guests.rows[] | select(.name == "web2") | .state' "$T/status.json")" = installing ] ||
    fail "/api/status: web2 is not installing"
[ "$(jq -r '.fleet.rows[] | select(.name == "rack-a1") | .state' "$T/status.json")" = armed ] ||
    fail "/api/status: rack-a1 is not armed"
jq -e '.content[] | select(.kind == "iso" and .name == "installer")' "$T/status.json" >/dev/null ||
    fail "/api/status: no ISO"
[ "$(jq -r '.content[] | select(.name == "deb") | .source' "$T/status.json")" = http://127.0.0.1:9/debian ] ||
    fail "/api/status: the upstream's URL is not shown without its user and password"
jq -e '.host.no_xen' "$T/status.json" >/dev/null || fail "/api/status does not say there is no Xen"
curl -sf "$base/metrics" | grep -qx 'xenprov_guest_state{guest="web3",state="failed"} 1' ||
    fail "/metrics: no state series for web3"
hash=$(sed -n "s/^root-password-hash = '\(.*\)'$/\1/p" tests/guests/deb-pv.toml)
digest=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
for path in /ui/ /api/status /metrics; do
    curl -sf "$base$path" >"$T/page"
    for secret in "$hash" "$TOKEN" "$digest" "$UPSTREAM_PASSWORD"; do
        grep -qF -- "$secret" "$T/page" && fail "$path holds a secret"
    done
done

step "Chromium: no console error, the known states, events without a reload, axe-core, no JavaScript"
TOKEN=$TOKEN /usr/bin/python3 tests/status/browser.py "$base" "$axe" out/status check ||
    fail "the status page in Chromium"
grep -q "$TOKEN" "$T/server.log" && fail "the token is in the server's log"
grep -q "$UPSTREAM_PASSWORD" "$T/server.log" && fail "the upstream's password is in the server's log"
curl -s -o /dev/null "$base/deb/dists/bookworm/InRelease" # a fetch that fails, and says so in the log
log_has "upstream deb: http://127.0.0.1:9/debian/dists/bookworm/InRelease: " ||
    fail "the failed fetch is not logged with the upstream's URL"
grep -q "$UPSTREAM_PASSWORD" "$T/server.log" && fail "a failed fetch logged the upstream's password"
echo "status page: PASS"
