#!/usr/bin/env bash
# A Debian PVH guest on the host that 50-install-e2e installed: its installer boots on Xen as PVH,
# fetches its preseed with its install token and reports `started`, and d-i checks its mirror through
# the repo server's cache. The rest of its install and its run phase are the same as the PV guest's
# (55-guests-e2e); PVH went through them by hand (tests/guests/e2e.sh standin), but too rarely under
# QEMU TCG's nested SVM for CI. Even this stage meets a triple fault now and then: Xen logs it, and
# the test tries again, at most five times; any other failure is final.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" target.img answer.img answer.toml id_ed25519 admin.pw
XENPROV_GUESTS_HOST=${XENPROV_E2E_OUT:-out/e2e} XENPROV_GUESTS_OUT=out/guests-pvh XENPROV_GUESTS_TYPES=pvh \
    XENPROV_GUESTS_TRIES=5 exec bash tests/guests/e2e.sh preseed
