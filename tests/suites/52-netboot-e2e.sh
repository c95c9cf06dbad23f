#!/usr/bin/env bash
# Fleet installs over the network, on the ISO that 50-install-e2e built: a BIOS and a UEFI host netboot
# through the repo server, install with their own answers, and boot their disks; an unknown machine and
# a re-armed host (tests/e2e/netboot.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" xenprov.iso
exec bash tests/e2e/netboot.sh
