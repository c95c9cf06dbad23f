# shellcheck shell=bash
# Sourced by the installer suites: an answer file for a disk image, and a payload of one small file.

# image_answer TARGET DISK_LINES [VOLUMES]: the answer file, on stdout (one 1G root by default).
image_answer() {
    local volumes=${3:-}
    [ -n "$volumes" ] || volumes='[{ name = "root", mount = "/", size = "1G" }]'
    cat <<TOML
[disk]
target = "$1"
$2
[lvm]
volumes = $volumes
[xen]
dom0-mem = "512M"
[repo]
enable = false
[system]
hostname = "imgtest"
root-password-hash = "!"
TOML
}

# tiny_payload DIR: a payload (manifest and archive) holding only /etc/motd.
tiny_payload() {
    mkdir -p "$1/root/etc"
    echo hello >"$1/root/etc/motd"
    tar -C "$1/root" --numeric-owner -cf - . | zstd -q -o "$1/payload.tar.zst"
    cat >"$1/payload.json" <<JSON
{"file": "payload.tar.zst", "format": "tar+zstd", "sha256": "$(sha256sum "$1/payload.tar.zst" | cut -d' ' -f1)",
 "size": $(stat -c %s "$1/payload.tar.zst"), "unpacked-size": 6, "usage": {"/etc": 6},
 "kernel-version": "test", "xen-version": "test"}
JSON
}
