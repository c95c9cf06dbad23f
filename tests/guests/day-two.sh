# shellcheck shell=bash
# Day two on the host (sourced by tests/guests/e2e.sh, with its on_host, await, guest_says, timing and
# fail): a Debian PV guest that the dom0 debootstraps into its disk, behind the dom0's NAT, goes from
# `new` to SSH (day_two_new; e2e.sh then reboots the host, and day_two_nat shows its rules came back
# with it), and then through the verbs an admin uses on it (day_two), each judged from outside the
# tool — by xl, by the guest over SSH, by the files on its disk, by a machine on the uplink:
#   NAT: the guest has its reserved address, fetches from the repo server and from a machine on the
#   uplink (a network namespace on the dom0's bridge, which sees the dom0's address), and that machine
#   reaches it only through its forwarded port;
#   stop, list says stopped, mount shows its /etc/hostname, umount, start, mount refused while it runs;
#   resize to a larger disk shows in the guest's df (online, by the grow hook the install put in it);
#   set --memory shows in xl list; pause/unpause show in list;
#   snapshot create, a file deleted in the guest, stop, snapshot rollback, start: the file is back;
#   backup (of the running guest, through a snapshot), rm, restore, start: it answers SSH again;
# and, with XENPROV_GUESTS_BENCH=1, the backup's throughput against `dd | zstd` of the same volume.

DAY2=deb-boot

# The debootstrapped base system, prepared on this machine by the same xenprov-guest (`prepare-base`,
# from this machine's mirror; cached under /var/cache/xenprov/guest-base by its key) and copied into
# the host's cache, where `new` finds it under the same name: a first debootstrap inside the dom0
# under QEMU TCG takes over half an hour, which CI's time cannot hold (XENPROV_GUESTS_DOM0_BASE=1 has
# the dom0 make its own, as a host without a seeded cache does).
seed_base() {
    [ -z "${XENPROV_GUESTS_DOM0_BASE:-}" ] || return 0
    local start=$SECONDS cfg base
    # The whole workspace, as the host's build made it: one package alone unifies features anew and rebuilds.
    cargo build -q --release --workspace
    cfg=$(mktemp)
    printf 'installer-cache = "%s/guest-base"\n' "${XENPROV_CACHE:-/var/cache/xenprov}" >"$cfg"
    base=$(target/release/xenprov-guest --config "$cfg" prepare-base debian12 --mirror "$(mirror)") ||
        fail "prepare-base on this machine"
    rm -f "$cfg"
    on_host "mkdir -p /var/cache/xenprov/installers/debootstrap && cat >/var/cache/xenprov/installers/debootstrap/${base##*/}" <"$base" ||
        fail "copying the base system to the host"
    timing "debootstrap base: prepared here (cached), copied to the host" $((SECONDS - start))
}

# xenprov-guest's state of a guest in `list --json`.
listed_state() {
    on_host "xenprov-guest list --json" | /usr/bin/python3 -c "import json, sys
print(next((r['state'] for r in json.load(sys.stdin) if r['name'] == '$1'), 'absent'))"
}
state_is() { [ "$(listed_state "$1")" = "$2" ]; }
# A command in the guest over SSH (tests/guests/guest-ssh.sh), as root.
in_guest() { on_host "bash /tmp/guests/guest-ssh.sh $DAY2 $(printf '%q' "$1")"; }
# The exit status of a xenprov-guest command on the host, its output shown.
status_of() {
    local rc=0
    on_host "xenprov-guest $1" || rc=$?
    echo "$rc"
}
# The guest's root file system size in bytes, as df in the guest tells it.
guest_root_bytes() { in_guest "df -B1 --output=size / | tail -n 1" | tr -d ' '; }
root_bigger_than() { local b; b=$(guest_root_bytes 2>/dev/null) && [ -n "$b" ] && [ "$b" -gt "$1" ]; }
# The guest's memory in MiB in `xl list`.
xl_mem() { on_host "xl list $DAY2" | awk 'NR == 2 { print $3 }'; }
xl_mem_is() { [ "$(xl_mem)" = "$1" ]; }

# A machine on the uplink: network namespace `outside` on the dom0's bridge, with an address of the
# uplink's subnet and a route to the NAT subnet through the dom0, as any neighbour could set; it
# serves one file over HTTP (the repo server binary, in the namespace), whose access log names who
# came.
OUTSIDE_PORT=18091
outside_up() {
    # shellcheck disable=SC2016 # expanded in the dom0
    on_host 'set -e
        ip netns list | grep -qw outside && exit 0
        dom0=$(ip -4 -o addr show dev xenbr0 | awk "{ print \$4 }")
        subnet=$(xenprov-guest network show --json | sed -n "s/.*\"subnet\": \"\(.*\)\".*/\1/p")
        ip netns add outside
        ip link add xp-out type veth peer name xp-out-ns
        ip link set xp-out master xenbr0 up
        ip link set xp-out-ns netns outside
        ip -n outside link set lo up
        ip -n outside addr add "${dom0%.*/*}.200/${dom0#*/}" dev xp-out-ns
        ip -n outside link set xp-out-ns up
        ip -n outside route add "$subnet" via "${dom0%/*}"
        mkdir -p /tmp/guests/outside && echo outside >/tmp/guests/outside/hello.txt
        ip netns exec outside setsid /usr/sbin/xenprov-repo serve --listen "${dom0%.*/*}.200:'"$OUTSIDE_PORT"'" \
            --root /tmp/guests/outside </dev/null >/tmp/guests/outside.log 2>&1 &
        sleep 1'
}
dom0_uplink_ip() { on_host "ip -4 -o addr show dev xenbr0" | awk '{ split($4, a, "/"); print a[1] }'; }
# Whether the machine on the uplink opens a TCP connection to HOST:PORT within 5 s.
outside_connects() { on_host "ip netns exec outside timeout 5 bash -c 'exec 3<>/dev/tcp/$1/$2'" 2>/dev/null; }

# NAT, judged from both sides: the guest's reserved address, out to the repo server and to the
# uplink (masqueraded), and in only through the forward.
day_two_nat() {
    local got addr dom0
    outside_up || fail "$DAY2: setting up the machine on the uplink"
    addr=$(on_host "xenprov-guest network show --json" | /usr/bin/python3 -c "import json, sys
print(next(l['ip'] for l in json.load(sys.stdin)['nat']['leases'] if l['guest'] == '$DAY2'))") ||
        fail "$DAY2: no NAT reservation in network show"
    got=$(in_guest "hostname -I") || fail "$DAY2: hostname -I in the guest"
    grep -qw "$addr" <<<"$got" || fail "$DAY2: its addresses ($got) are not its reservation $addr"
    in_guest "apt-get -q update >/dev/null" || fail "$DAY2: apt-get update through the repo server, from behind the NAT"
    dom0=$(dom0_uplink_ip)
    # shellcheck disable=SC2016 # expanded in the guest, which has bash but no curl
    got=$(in_guest 'exec 3<>/dev/tcp/'"${dom0%.*}.200/$OUTSIDE_PORT"'; printf "GET /hello.txt HTTP/1.0\r\n\r\n" >&3; tail -n 1 <&3') ||
        fail "$DAY2: reaching the uplink from behind the NAT"
    [ "$got" = outside ] || fail "$DAY2: the machine on the uplink said '$got'"
    on_host "grep -q 'peer=$dom0:' /tmp/guests/outside.log" ||
        fail "$DAY2: the machine on the uplink did not see the dom0's address (masquerade): $(on_host 'tail -n 3 /tmp/guests/outside.log')"
    ! outside_connects "$addr" 22 || fail "$DAY2: the machine on the uplink reached the NAT guest's own address"
    got=$(on_host "ip netns exec outside timeout 10 bash -c 'exec 3<>/dev/tcp/$dom0/2222; head -c 7 <&3'") ||
        fail "$DAY2: the forwarded port $dom0:2222 did not answer"
    [ "$got" = SSH-2.0 ] || fail "$DAY2: the forwarded port answered '$got', not the guest's sshd"
    echo "$DAY2: NAT $addr: out to the repo server and the uplink (seen as $dom0), in only through $dom0:2222"
}

# The day-two guest, from `new` to SSH and its NAT checks.
day_two_new() {
    local start s got
    seed_base
    start=$SECONDS
    on_host "xenprov-guest new $DAY2 --from /tmp/guests/$DAY2.toml" | tee "$OUT/$DAY2-new.log" ||
        fail "$DAY2: xenprov-guest new (debootstrap)"
    timing "$DAY2: new (debootstrap, base unpacked from the cache)" $((SECONDS - start))
    s=$(await "$DAY2: SSH after new (debootstrap)" 900 "$start" guest_says "$DAY2")
    timing "$DAY2: new -> SSH (debootstrap)" "$s"
    state_is "$DAY2" running || fail "$DAY2: list says $(listed_state "$DAY2"), not running"
    got=$(in_guest hello) || fail "$DAY2: the package of its definition does not run"
    [ "$got" = "Hello, world!" ] || fail "$DAY2: hello said '$got'"
    # Its APT source is the repo server's verifying cache, as the guest reaches it.
    got=$(in_guest "cat /etc/apt/sources.list")
    grep -q ':8080/debian bookworm main' <<<"$got" || fail "$DAY2: its sources.list is '$got'"
    day_two_nat
    # shellcheck disable=SC2034 # read by e2e.sh, which sources this file
    DAY2_UP=1
}

# With XENPROV_GUESTS_NETWORKS=1 (each guest is minutes under TCG, which CI's time does not hold): a routed
# guest and a VLAN guest, one after the other, judged by the machine on the uplink. The routed one answers
# at its own address (the dom0 answers ARP for it) and is seen by that machine with it; the VLAN one is
# reached with tag 42 and not without.
guest_up() {
    local start=$SECONDS s
    on_host "xenprov-guest new $1 --from /tmp/guests/$1.toml" >"$OUT/$1-new.log" 2>&1 || fail "$1: xenprov-guest new (see $OUT/$1-new.log)"
    s=$(await "$1: SSH after new" 900 "$start" guest_says "$1")
    timing "$1: new -> SSH (debootstrap)" "$s"
}
day_two_networks() {
    local got
    outside_up || fail "setting up the machine on the uplink"
    guest_up deb-routed
    got=$(on_host "ip netns exec outside timeout 10 bash -c 'exec 3<>/dev/tcp/10.0.2.50/22; head -c 7 <&3'") ||
        fail "deb-routed: the machine on the uplink cannot reach its routed address"
    [ "$got" = SSH-2.0 ] || fail "deb-routed: its address answered '$got'"
    # shellcheck disable=SC2016 # expanded in the guest
    got=$(on_host "bash /tmp/guests/guest-ssh.sh deb-routed $(printf '%q' 'exec 3<>/dev/tcp/'"$(dom0_uplink_ip | sed 's/\.[0-9]*$//').200/$OUTSIDE_PORT"'; printf "GET /hello.txt HTTP/1.0\r\n\r\n" >&3; tail -n 1 <&3')") ||
        fail "deb-routed: reaching the uplink"
    [ "$got" = outside ] || fail "deb-routed: the machine on the uplink said '$got'"
    on_host "grep -q 'peer=10.0.2.50:' /tmp/guests/outside.log" || fail "deb-routed: the uplink did not see its own address"
    on_host "xenprov-guest rm --force deb-routed" || fail "deb-routed: rm"
    echo "deb-routed: reached at 10.0.2.50 from the uplink (proxy ARP), seen there with its own address"

    guest_up deb-vlan
    on_host "ip -n outside link add link xp-out-ns name xp-out-ns.42 type vlan id 42 &&
        ip -n outside addr add 192.168.42.200/24 dev xp-out-ns.42 && ip -n outside link set xp-out-ns.42 up" ||
        fail "deb-vlan: VLAN 42 on the machine on the uplink"
    got=$(on_host "ip netns exec outside timeout 10 bash -c 'exec 3<>/dev/tcp/192.168.42.5/22; head -c 7 <&3'") ||
        fail "deb-vlan: not reached in VLAN 42"
    [ "$got" = SSH-2.0 ] || fail "deb-vlan: its address answered '$got'"
    on_host "ip -n outside link del xp-out-ns.42 && ip -n outside addr add 192.168.42.201/24 dev xp-out-ns" ||
        fail "deb-vlan: an untagged address on the machine on the uplink"
    ! outside_connects 192.168.42.5 22 || fail "deb-vlan: reached without its VLAN tag"
    on_host "ip -n outside addr del 192.168.42.201/24 dev xp-out-ns; xenprov-guest rm --force deb-vlan" || fail "deb-vlan: rm"
    echo "deb-vlan: reached in VLAN 42 from the uplink, not untagged"
}

# The day-two verbs, on the guest day_two_new made.
day_two() {
    local start s rc before got

    # --- lifecycle, and offline access to the disk ---
    on_host "xenprov-guest stop $DAY2 --timeout 3m" || fail "$DAY2: stop"
    state_is "$DAY2" stopped || fail "$DAY2: after stop, list says $(listed_state "$DAY2")"
    on_host "xenprov-guest mount $DAY2 /mnt/$DAY2" || fail "$DAY2: mount"
    got=$(on_host "cat /mnt/$DAY2/etc/hostname")
    [ "$got" = "$DAY2" ] || fail "$DAY2: its mounted /etc/hostname says '$got'"
    rc=0
    on_host "touch /mnt/$DAY2/written" 2>/dev/null || rc=$?
    [ "$rc" -ne 0 ] || fail "$DAY2: a read-only mount took a write"
    rc=$(status_of "start $DAY2")
    [ "$rc" = 4 ] || fail "$DAY2: start while its disk is mounted: status $rc, not 4 (refused)"
    on_host "xenprov-guest umount $DAY2" || fail "$DAY2: umount"
    start=$SECONDS
    on_host "xenprov-guest start $DAY2" || fail "$DAY2: start"
    rc=$(status_of "mount $DAY2 /mnt/$DAY2")
    [ "$rc" = 4 ] || fail "$DAY2: mount of a running guest: status $rc, not 4 (refused)"
    s=$(await "$DAY2: SSH after start" 600 "$start" guest_says "$DAY2")
    timing "$DAY2: start -> SSH" "$s"
    on_host "xenprov-guest pause $DAY2" && state_is "$DAY2" paused || fail "$DAY2: pause: list says $(listed_state "$DAY2")"
    on_host "xenprov-guest unpause $DAY2" && state_is "$DAY2" running || fail "$DAY2: unpause: list says $(listed_state "$DAY2")"

    # --- resources ---
    on_host "xenprov-guest set $DAY2 --memory 768M" || fail "$DAY2: set --memory"
    s=$(await "$DAY2: xl list shows 768 MiB" 120 "$SECONDS" xl_mem_is 768)
    timing "$DAY2: set --memory 768M -> xl list shows it" "$s"
    on_host "grep -qx 'memory = 768' /etc/xen/$DAY2.cfg" || fail "$DAY2: set --memory was not kept for its next boot"

    # --- storage: grow online ---
    before=$(guest_root_bytes) || fail "$DAY2: df in the guest"
    start=$SECONDS
    on_host "xenprov-guest resize $DAY2 6G" || fail "$DAY2: resize"
    # The guest learns of it at its next disk access.
    in_guest "sync; touch /var/tmp/poke; sync" || true
    s=$(await "$DAY2: its root grew online (df in the guest)" 300 "$start" root_bigger_than $((before + (1 << 30))))
    timing "$DAY2: resize 4G -> 6G: seen by df in the guest" "$s"
    echo "$DAY2: root $before -> $(guest_root_bytes) bytes; $(in_guest 'journalctl -q -t xenprov-grow-root -o cat' | tail -n 1)"

    # --- snapshot and rollback ---
    in_guest "echo precious >/root/keep && sync" || fail "$DAY2: writing a file in the guest"
    on_host "xenprov-guest snapshot $DAY2 create before" || fail "$DAY2: snapshot create"
    in_guest "rm /root/keep && sync" || fail "$DAY2: deleting the file in the guest"
    on_host "xenprov-guest snapshot $DAY2 list" | tee "$OUT/$DAY2-snapshots.txt" | grep -q '^before ' ||
        fail "$DAY2: snapshot list does not show it"
    rc=$(status_of "snapshot $DAY2 rollback before")
    [ "$rc" = 4 ] || fail "$DAY2: rollback of a running guest: status $rc, not 4 (refused)"
    on_host "xenprov-guest stop $DAY2" && on_host "xenprov-guest snapshot $DAY2 rollback before" ||
        fail "$DAY2: stop and rollback"
    start=$SECONDS
    on_host "xenprov-guest start $DAY2" || fail "$DAY2: start after rollback"
    await "$DAY2: SSH after rollback" 600 "$start" guest_says "$DAY2" >/dev/null
    got=$(in_guest "cat /root/keep") || fail "$DAY2: the deleted file is not back after the rollback"
    [ "$got" = precious ] || fail "$DAY2: /root/keep says '$got' after the rollback"

    # --- backup of the running guest, rm, restore ---
    start=$SECONDS
    on_host "xenprov-guest backup $DAY2 /var/tmp/$DAY2.backup" || fail "$DAY2: backup"
    local t_backup=$((SECONDS - start))
    timing "$DAY2: backup (6G disk, running, through a snapshot)" "$t_backup"
    # The anchor, with XENPROV_GUESTS_BENCH=1 (a benchmark, not a check; CI's time has no room for it):
    # dd | zstd of the same volume, in the same run.
    if [ -n "${XENPROV_GUESTS_BENCH:-}" ]; then
        start=$SECONDS
        on_host "dd if=/dev/dsk/$DAY2-disk bs=4M status=none | zstd -q -3 -T1 >/var/tmp/$DAY2.dd.zst && rm /var/tmp/$DAY2.dd.zst"
        local t_dd=$((SECONDS - start))
        timing "$DAY2: dd | zstd -3 of the same volume" "$t_dd"
        echo "=== guests e2e: backup throughput against dd | zstd: $(awk -v a="$t_dd" -v b="$t_backup" 'BEGIN { printf "%.2f", a / (b ? b : 1) }')x"
    fi
    on_host "xenprov-guest rm --force $DAY2" || fail "$DAY2: rm"
    state_is "$DAY2" absent || fail "$DAY2: still listed after rm"
    on_host "xenprov-guest restore /var/tmp/$DAY2.backup" || fail "$DAY2: restore"
    state_is "$DAY2" stopped || fail "$DAY2: after restore, list says $(listed_state "$DAY2")"
    start=$SECONDS
    on_host "xenprov-guest start $DAY2" || fail "$DAY2: start after restore"
    s=$(await "$DAY2: SSH after restore" 600 "$start" guest_says "$DAY2")
    timing "$DAY2: restore, start -> SSH" "$s"
    got=$(in_guest "cat /root/keep") || fail "$DAY2: /root/keep is not in the restored guest"
    on_host "rm -f /var/tmp/$DAY2.backup; xenprov-guest rm --force $DAY2" || fail "$DAY2: rm at the end"
    echo "=== guests e2e: day two: PASS"
}
