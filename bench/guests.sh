#!/usr/bin/env bash
# Guest rendering benchmark: 1,000 definitions read and rendered into all five outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p xenprov-guest --bench render
