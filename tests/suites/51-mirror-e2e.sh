#!/usr/bin/env bash
# The mirrored dom0, on the ISO that 50-install-e2e built: an unattended install onto two blank disks,
# both disks' arrays read from this machine, then boots with both disks, with only the first (SeaBIOS)
# and with only the second (OVMF, fresh NVRAM), and the ESP sync after a dpkg run on the host.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" xenprov.iso
exec bash tests/e2e/mirror.sh
