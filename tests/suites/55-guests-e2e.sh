#!/usr/bin/env bash
# Guests on the host that 50-install-e2e installed: a Debian PV guest, then a Debian PVH guest, each
# created with xenprov-guest, boot their installer on Xen and fetch their preseed from the host's repo
# server with their install token. One guest per host boot: two guests in SVM containers at once have
# triple-faulted under QEMU TCG's nested SVM here, one at a time they run.
# The full guest install cannot finish here (this machine's Debian mirror serves no udebs for d-i);
# `bash tests/guests/e2e.sh full` runs it where a complete mirror is reachable.
set -euo pipefail
cd "$(dirname "$0")/../.."
for t in pv pvh; do
    XENPROV_GUESTS_HOST=${XENPROV_E2E_OUT:-out/e2e} XENPROV_GUESTS_OUT=out/guests/$t XENPROV_GUESTS_TYPES=$t \
        bash tests/guests/e2e.sh preseed
done
