#!/usr/bin/env bash
# Builds an RPM repository in $1 with rpmbuild (xenprov-big requires xenprov-hello and carries a 3 MiB
# incompressible payload) and createrepo_c (gzip and zchunk metadata). Usage: build-rpm-repo.sh REPO_DIR
set -euo pipefail
repo=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"
cat >"$work/hello.spec" <<'SPEC'
Name: xenprov-hello
Version: 1.0
Release: 1
Summary: xenprov repo-server test package
License: MIT
BuildArch: noarch
%description
Served by xenprov-repo in its test suite.
%install
mkdir -p %{buildroot}/usr/share/xenprov-hello
echo "hello from xenprov" > %{buildroot}/usr/share/xenprov-hello/hello.txt
%files
/usr/share/xenprov-hello/hello.txt
SPEC
cat >"$work/big.spec" <<'SPEC'
Name: xenprov-big
Version: 2.0
Release: 1
Summary: xenprov repo-server test package with a large payload
License: MIT
BuildArch: noarch
Requires: xenprov-hello
%global _binary_payload w0.gzdio
%description
An incompressible payload, so that the download is sent with sendfile.
%install
mkdir -p %{buildroot}/usr/share/xenprov-big
head -c 3145728 /dev/urandom > %{buildroot}/usr/share/xenprov-big/blob
%files
/usr/share/xenprov-big/blob
SPEC
for spec in "$work"/*.spec; do
    rpmbuild --quiet --define "_topdir $work/rpmbuild" -bb "$spec"
done
cp "$work"/rpmbuild/RPMS/noarch/*.rpm "$repo/"
createrepo_c --quiet --zck "$repo"
