#!/usr/bin/env bash
# Runs in the dom0: a command in guest NAME over SSH, as root with the test's key (/tmp/guests/id,
# which the guest has from its preseed's late_command). The guest's address is the one whose
# neighbour entry on its bridge has its MAC (both from its xl config); knocking on port 22 of the
# bridge's DHCP range makes the dom0 learn the entries.
#
#   guest-ssh.sh NAME COMMAND
set -euo pipefail
NAME=$1
shift
cfg=/etc/xen/$NAME.cfg
mac=$(sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p' "$cfg")
bridge=$(sed -n 's/.*bridge=\([^" ,]*\).*/\1/p' "$cfg")
[ -n "$mac" ] && [ -n "$bridge" ] || { echo "guest-ssh: no mac or bridge in $cfg" >&2; exit 1; }
net=$(ip -4 -o addr show dev "$bridge" | awk '{split($4, a, "."); print a[1] "." a[2] "." a[3]; exit}')
for i in $(seq 2 62); do timeout 1 bash -c "</dev/tcp/$net.$i/22" 2>/dev/null & done
wait
addr=$(ip -4 neigh show dev "$bridge" | awk -v m="$mac" 'tolower($0) ~ m && !/FAILED|INCOMPLETE/ {print $1; exit}')
[ -n "$addr" ] || { echo "guest-ssh: no address on $bridge answers for $NAME ($mac)" >&2; exit 1; }
exec ssh -q -i /tmp/guests/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -o ConnectTimeout=10 "root@$addr" "$@"
