#!/usr/bin/env bash
# Guests on the host that 50-install-e2e installed: a Debian PV guest created with xenprov-guest boots
# its installer on Xen and fetches its preseed from the host's repo server with its install token;
# tests/guests/standin.sh then does d-i's package steps in the dom0 (this machine's Debian mirror
# serves no udebs, so d-i cannot), the preseed's late_command reports done, and xenprov-guest switches
# the guest to its own disk, where pvgrub2 boots it to a login prompt.
# PVH and HVM guests run the same way by hand (XENPROV_GUESTS_TYPES=pvh or hvm, one per host boot), but
# not here: under QEMU TCG's nested SVM they triple-fault now and then, even alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
XENPROV_GUESTS_HOST=${XENPROV_E2E_OUT:-out/e2e} XENPROV_GUESTS_TYPES=pv exec bash tests/guests/e2e.sh standin
