#!/usr/bin/env bash
# The mirrored dom0, on the ISO that 50-install-e2e built: an unattended install onto two blank disks,
# both disks' arrays read from this machine, boots with both disks, with only the second (OVMF, fresh
# NVRAM) and only the first (SeaBIOS), the ESP sync after a dpkg run on the host, and `disk replace`
# bringing a third disk in, which then boots alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/deps.sh
needs_suite 50-install-e2e "${XENPROV_E2E_OUT:-out/e2e}" xenprov.iso
exec bash tests/e2e/mirror.sh
