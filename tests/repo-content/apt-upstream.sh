#!/usr/bin/env bash
# A throw-away APT repository to stand for an upstream: packages built with dpkg-deb, indexed by
# apt-ftparchive (Acquire-By-Hash), signed with a throw-away GnuPG key that is kept so that the
# repository can change and be signed again.
#   apt-upstream.sh init REPO KEYDIR            key (KEYDIR/key.gpg, KEYDIR/gnupg; KEYDIR/key.asc the same
#                                               key armored, after an unrelated one), packages hello, big,
#                                               huge, and installer images listed in a SHA256SUMS
#   apt-upstream.sh empty REPO KEYDIR           the key only
#   apt-upstream.sh add REPO KEYDIR NAME BYTES  one more package with a payload of BYTES random bytes
#   apt-upstream.sh many REPO KEYDIR PREFIX COUNT BYTES  COUNT more (PREFIX1 ... PREFIXCOUNT)
set -euo pipefail
cmd=$1 repo=$2 keys=$3
export GNUPGHOME=$keys/gnupg

# mkdeb NAME BYTES: a package whose payload is BYTES random bytes (uncompressed, so its size is known).
mkdeb() {
    local name=$1 bytes=$2 d
    d=$(mktemp -d)
    mkdir -p "$d/DEBIAN" "$d/usr/share/$name" "$repo/pool/main"
    head -c "$bytes" /dev/urandom >"$d/usr/share/$name/blob"
    printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: xenprov tests <tests@invalid>\nDescription: xenprov repo-content test package\n' \
        "$name" >"$d/DEBIAN/control"
    dpkg-deb -Znone --root-owner-group --build "$d" "$repo/pool/main/${name}_1.0_all.deb" >/dev/null
    rm -rf "$d"
}

index() {
    mkdir -p "$repo/dists/stable/main/binary-amd64"
    cd "$repo"
    apt-ftparchive packages pool/main >dists/stable/main/binary-amd64/Packages
    rm -f dists/stable/main/binary-amd64/Packages.xz dists/stable/main/binary-amd64/Packages.gz
    xz -k dists/stable/main/binary-amd64/Packages
    gzip -k dists/stable/main/binary-amd64/Packages
    # as in Debian's archive, the Release also lists the installer's SHA256SUMS
    apt-ftparchive \
        -o 'APT::FTPArchive::Release::Patterns::=*Packages*' -o 'APT::FTPArchive::Release::Patterns::=SHA256SUMS' \
        -o APT::FTPArchive::Release::Origin=xenprov-test -o APT::FTPArchive::Release::Version=1.0 \
        -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
        -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures=amd64 \
        -o APT::FTPArchive::Release::Acquire-By-Hash=yes -o APT::FTPArchive::DoByHash=true \
        release dists/stable >"$keys/Release.new"
    mv "$keys/Release.new" dists/stable/Release
    gpg --batch --yes --clearsign -o dists/stable/InRelease.new dists/stable/Release
    gpg --batch --yes -abs -o dists/stable/Release.gpg dists/stable/Release
    mv dists/stable/InRelease.new dists/stable/InRelease
}

case $cmd in
init | empty)
    mkdir -p "$repo" "$keys"
    mkdir -m 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key "xenprov repo-content test <tests@invalid>" ed25519 sign never
    gpg --batch --export >"$keys/key.gpg"
    # armored as vendors ship keys (RPM-GPG-KEY-*, .asc), behind an unrelated key's block as in a file
    # of several keys
    other=$(mktemp -d)
    GNUPGHOME=$other gpg --batch --quiet --passphrase '' --quick-gen-key "unrelated <other@invalid>" ed25519 sign never
    { GNUPGHOME=$other gpg --batch --armor --export && gpg --batch --armor --export; } >"$keys/key.asc"
    GNUPGHOME=$other gpgconf --kill all
    rm -rf "$other"
    [ "$cmd" = empty ] && exit 0
    mkdeb xenprov-hello 1000
    mkdeb xenprov-big 3000000
    mkdeb xenprov-huge 24000000
    images=$repo/dists/stable/main/installer-amd64/current/images
    mkdir -p "$images/netboot/xen"
    head -c 200000 /dev/urandom >"$images/netboot/xen/vmlinuz"
    head -c 100000 /dev/urandom >"$images/netboot/xen/initrd.gz"
    (cd "$images" && sha256sum ./netboot/xen/vmlinuz ./netboot/xen/initrd.gz >SHA256SUMS)
    index
    ;;
add)
    mkdeb "$4" "$5"
    index
    ;;
many)
    for i in $(seq "$5"); do mkdeb "$4$i" "$6"; done
    index
    ;;
*) echo "usage: $0 init|empty|add|many REPO KEYDIR [NAME BYTES | PREFIX COUNT BYTES]" >&2; exit 2 ;;
esac
