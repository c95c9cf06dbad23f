# shellcheck shell=bash
# Sourced by the status page's suite and benchmark: a guest registry, a fleet and an ISO in known
# states, in the registry's and the fleet's own on-disk formats, under $T.
#   status_state [GUESTS]: guests.toml, a registry with web1 (installed, run once: stopped here, as
#   no domain of it exists), web2 (installing, armed with token $TOKEN), web3 (failed, with its
#   message) and GUESTS more defined guests (bulk-N); a console log of web1; host entries rack-a1 and
#   rack-a2; an ISO image with a kernel; an upstream whose URL has UPSTREAM_PASSWORD in it. Sets TOKEN
#   and ARGS for `xenprov-repo serve`.
TOKEN=status-page-test-token-0123456789abcdef
UPSTREAM_PASSWORD=upstream-password-not-shown
status_state() {
    local extra=${1:-0} now reg i
    now=$(date +%s)
    reg=$T/registry
    mkdir -p "$reg/.armed" "$T/console" "$T/hosts/answers" "$T/iso/boot" "$T/root"
    printf '[paths]\nregistry = "%s"\nconsole-log = "%s"\n' "$reg" "$T/console" >"$T/guests.toml"
    guest() { # NAME STATUS-JSON
        mkdir -p "$reg/$1"
        sed "s/^name = .*/name = \"$1\"/" tests/guests/deb-pv.toml >"$reg/$1/guest.toml"
        printf '%s\n' "$2" >"$reg/$1/status.json"
    }
    guest web1 "{\"state\":\"installed\",\"since\":$((now - 7200)),\"switched\":$((now - 7100)),\"events\":[{\"at\":$((now - 7150)),\"event\":\"started\"},{\"at\":$((now - 7110)),\"event\":\"done\"}]}"
    local digest
    digest=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
    guest web2 "{\"state\":\"installing\",\"since\":$((now - 60)),\"token_sha256\":\"$digest\",\"source\":{\"repo_url\":\"http://127.0.0.1:1\",\"tree_url\":\"http://127.0.0.1:1/debian\",\"kernel\":\"/k\",\"ramdisk\":\"/r\"},\"install_started\":$((now - 60)),\"timeout_secs\":7200}"
    printf web2 >"$reg/.armed/$digest"
    guest web3 "{\"state\":\"failed\",\"since\":$((now - 300)),\"message\":\"the installer reported failure: no network\"}"
    for ((i = 1; i <= extra; i++)); do
        guest "bulk-$i" "{\"state\":\"defined\",\"since\":$now}"
    done
    printf 'xenconsoled: web1 booted\nlogin: \n' >"$T/console/guest-web1.log"
    cp core/tests/fleet/rack.toml "$T/hosts/answers/rack.toml"
    printf 'answer = "answers/rack.toml"\n[match]\nmac = "52:54:00:ac:01:01"\n[vars]\naddress = "198.51.100.11/24"\n' >"$T/hosts/rack-a1.toml"
    printf 'answer = "answers/rack.toml"\n[match]\nmac = "52:54:00:ac:01:02"\n[vars]\naddress = "198.51.100.12/24"\n' >"$T/hosts/rack-a2.toml"
    head -c 100000 /dev/urandom >"$T/iso/boot/vmlinuz"
    head -c 50000 /dev/urandom >"$T/iso/boot/initrd.img"
    xorriso -as mkisofs -quiet -R -V XENPROV_TEST -o "$T/installer.iso" "$T/iso"
    # shellcheck disable=SC2034 # read by the scripts that source this file
    # An upstream whose URL carries a password, which no page may show (nothing listens there).
    ARGS=(--root "$T/root" --iso "installer=$T/installer.iso" --guests "$T/guests.toml"
        --hosts "$T/hosts" --hosts-state "$T/state" --cache "$T/cache"
        --upstream "deb=http://mirror-user:$UPSTREAM_PASSWORD@127.0.0.1:9/debian")
}
