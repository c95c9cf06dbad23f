#!/usr/bin/env bash
# Guests on the host that 50-install-e2e installed: a Debian PV guest created with xenprov-guest boots
# its installer on Xen and fetches its preseed from the host's repo server with its install token;
# tests/guests/standin.sh then does d-i's disk and package steps in the dom0 (this machine's Debian
# mirror serves no udebs, so d-i cannot), pkgsel's packages coming from the repo server's cache, the
# preseed's late_command reports done, and xenprov-guest switches the guest to its own disk, where
# pvgrub2 boots it; then SSH, apt through the repo server; a guest the dom0 debootstraps behind its NAT
# (tests/guests/day-two.sh); a host reboot with autostart (the NAT's rules and forward made again), rm;
# day two on the debootstrapped guest; and on the same boot a PVH guest as far as its installer's
# start (boot on Xen as PVH, preseed with its token, started, its mirror checked), tried up to five
# times on the triple faults QEMU TCG's nested SVM has now and then. The rest of PVH, and HVM, by hand
# (XENPROV_GUESTS_TYPES=pvh or hvm), as those faults come too often for CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" target.img answer.img answer.toml id_ed25519 admin.pw
XENPROV_GUESTS_HOST=${XENPROV_E2E_OUT:-out/e2e} XENPROV_GUESTS_TYPES=pv XENPROV_GUESTS_PVH_START=5 exec bash tests/guests/e2e.sh standin
