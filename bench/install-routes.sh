#!/usr/bin/env bash
# The install routes' refusal of a wrong token, for a known guest against an unknown one: the
# anchor is the unknown guest, in the same run, and the ratio of the medians should be 1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p xenprov-repo --bench install_routes
