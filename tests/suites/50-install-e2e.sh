#!/usr/bin/env bash
# The main job as a suite: ISO build, unattended install in QEMU, installed disk booted into Xen (BIOS, UEFI).
exec bash "$(dirname "$0")/../e2e/install.sh"
