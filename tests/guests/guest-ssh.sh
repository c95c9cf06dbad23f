#!/usr/bin/env bash
# Runs in the dom0: a command in guest NAME over SSH, as root with the test's key (/tmp/guests/id,
# which the guest has from its preseed's late_command). The guest is reached at its IPv6 link-local
# address on its bridge, derived from its MAC (both from its xl config) as its kernel derives it
# (EUI-64, Debian's default): that address needs neither the guest's DHCP lease nor a scan of the
# bridge's IPv4 range, so SSH fails only when the guest, its vif or its sshd does. A routed guest (on no
# bridge) is reached at its routed address.
#
#   guest-ssh.sh NAME COMMAND
set -euo pipefail
NAME=$1
shift
cfg=/etc/xen/$NAME.cfg
ssh=(ssh -q -i /tmp/guests/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
    -o ConnectTimeout=10)
# A routed guest's vif is on no bridge: it is reached at the address the dom0 routes to it.
routed=$(sed -n 's/.*script=vif-route, ip=\([0-9.]*\).*/\1/p' "$cfg")
[ -z "$routed" ] || exec "${ssh[@]}" "root@$routed" "$@"
mac=$(sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p' "$cfg")
bridge=$(sed -n 's/.*bridge=\([^" ,]*\).*/\1/p' "$cfg")
[ -n "$mac" ] && [ -n "$bridge" ] || { echo "guest-ssh: no mac or bridge in $cfg" >&2; exit 1; }
IFS=: read -r m1 m2 m3 m4 m5 m6 <<<"$mac"
addr=$(printf 'fe80::%x:%x:%x:%x' $((0x$m1 << 8 ^ 0x200 | 0x$m2)) $((0x$m3 << 8 | 0xff)) \
    $((0xfe00 | 0x$m4)) $((0x$m5 << 8 | 0x$m6)))
exec "${ssh[@]}" "root@$addr%$bridge" "$@"
