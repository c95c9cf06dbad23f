#!/usr/bin/env bash
# The mirrored dom0, on the ISO that 50-install-e2e built: an unattended install onto two blank disks,
# both disks' arrays read from this machine, and the boot from the second disk alone (OVMF, fresh NVRAM).
# XENPROV_MIRROR_FULL=1 adds the boots with both disks and with the first alone, the ESP sync after a
# dpkg run on the host, and `disk replace` bringing a third disk in, which then boots alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" xenprov.iso
exec bash tests/e2e/mirror.sh
