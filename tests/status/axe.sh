#!/usr/bin/env bash
# Prints the path of axe-core's axe.min.js, fetched once from the npm registry into the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
version=4.10.3
cache=/var/cache/xenprov/npm/axe-core-$version
if [ ! -s "$cache/package/axe.min.js" ]; then
    # npm comes with Node.js; Debian's package when this machine has no Node.js of its own.
    command -v npm >/dev/null || need_pkgs npm >&2
    mkdir -p "$cache"
    (cd "$cache" && npm pack --silent "axe-core@$version" >/dev/null && tar -xzf "axe-core-$version.tgz")
fi
echo "$cache/package/axe.min.js"
