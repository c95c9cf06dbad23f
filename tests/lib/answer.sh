# shellcheck shell=bash
# Sourced by the e2e tests and benchmarks: an answer disk for one run.
# answer_disk TEMPLATE DIR: a fresh SSH key (DIR/id_ed25519) and admin password (DIR/admin.pw, which
# stays on this machine; the answer only holds its hash) replace SSH_KEY and ADMIN_HASH in TEMPLATE,
# giving DIR/answer.toml, copied onto DIR/answer.img, a 16 MiB FAT disk labelled XENPROV.
answer_disk() {
    local template=$1 dir=$2
    rm -f "$dir/id_ed25519"* "$dir/answer.img"
    ssh-keygen -q -t ed25519 -N '' -C xenprov-test -f "$dir/id_ed25519"
    (umask 077 && openssl rand -hex 16 >"$dir/admin.pw")
    sed -e "s|ADMIN_HASH|$(openssl passwd -6 -stdin <"$dir/admin.pw")|" -e "s|SSH_KEY|$(cat "$dir/id_ed25519.pub")|" \
        "$template" >"$dir/answer.toml"
    truncate -s 16M "$dir/answer.img"
    mkfs.vfat -n XENPROV "$dir/answer.img" >/dev/null
    mcopy -i "$dir/answer.img" "$dir/answer.toml" ::answer.toml
}
