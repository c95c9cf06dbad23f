#!/usr/bin/env bash
# The repo server's soak: xenprov-repo, then nginx, under the same mixed hostile load (idle, slowloris,
# slow bodies, stalled HTTP/2, range storms) on loopback while a normal client measures its requests
# (bench/soak.sh). Fails when xenprov-repo leaves its latency or memory bounds; the ratios to nginx are
# printed and written to out/soak/, not asserted. About two and a half minutes (XENPROV_SOAK_SECONDS of
# normal requests per server, 60 by default).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash bench/soak.sh --check --seconds "${XENPROV_SOAK_SECONDS:-60}"
