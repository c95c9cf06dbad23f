#!/usr/bin/env bash
# Builds a signed APT repository in $1 from two tiny packages made with dpkg-deb (one with a 3 MB
# incompressible payload, so it is sent with sendfile), indexed by apt-ftparchive with by-hash files,
# signed with a throw-away key written to $2/key.gpg. Usage: build-apt-repo.sh REPO_DIR KEY_DIR
set -euo pipefail
repo=$1 keys=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo/pool/main" "$repo/dists/stable/main/binary-amd64" "$keys"
for name in xenprov-hello xenprov-big; do
    d=$work/$name
    mkdir -p "$d/DEBIAN" "$d/usr/share/$name"
    if [ "$name" = xenprov-big ]; then
        head -c 3000000 /dev/urandom >"$d/usr/share/$name/blob"
        depends="Depends: xenprov-hello"$'\n'
    else
        echo "hello from xenprov" >"$d/usr/share/$name/hello.txt"
        depends=
    fi
    printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: xenprov tests <tests@invalid>\n%sDescription: xenprov repo-server test package\n served by xenprov-repo in its test suite\n' \
        "$name" "$depends" >"$d/DEBIAN/control"
    dpkg-deb -Zxz --root-owner-group --build "$d" "$repo/pool/main/" >/dev/null
done
cd "$repo"
apt-ftparchive packages pool/main >dists/stable/main/binary-amd64/Packages
gzip -k dists/stable/main/binary-amd64/Packages
xz -k dists/stable/main/binary-amd64/Packages
apt-ftparchive \
    -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
    -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures=amd64 \
    -o APT::FTPArchive::Release::Acquire-By-Hash=yes -o APT::FTPArchive::DoByHash=true \
    release dists/stable >"$work/Release"
mv "$work/Release" dists/stable/Release
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "xenprov repo-server test <tests@invalid>" ed25519 sign never
gpg --batch --export >"$keys/key.gpg"
gpg --batch --yes --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --yes -abs -o dists/stable/Release.gpg dists/stable/Release
gpgconf --kill all
