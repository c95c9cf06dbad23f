#!/usr/bin/env bash
# Guests on the host that 50-install-e2e installed: a Debian PV guest created with xenprov-guest boots
# its installer on Xen and fetches its preseed from the host's repo server with its install token.
# PVH and HVM guests run the same way by hand (XENPROV_GUESTS_TYPES=pvh or hvm, one per host boot), but
# not here: under QEMU TCG's nested SVM they triple-fault now and then, even alone.
# The full guest install cannot finish here (this machine's Debian mirror serves no udebs for d-i);
# `bash tests/guests/e2e.sh full` runs it where a complete mirror is reachable.
set -euo pipefail
cd "$(dirname "$0")/../.."
XENPROV_GUESTS_HOST=${XENPROV_E2E_OUT:-out/e2e} XENPROV_GUESTS_TYPES=pv exec bash tests/guests/e2e.sh preseed
