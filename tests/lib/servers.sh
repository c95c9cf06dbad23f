# shellcheck shell=bash
# Sourced by the repo-server suites and benchmarks: a scratch directory whose processes are stopped on
# exit, free loopback ports, an nginx configuration, waiting for lines of our server's log, and medians.

# T: the scratch directory (world-readable: nginx workers run as nobody); add PIDs to `pids`.
scratch_init() {
    T=$(mktemp -d)
    chmod 755 "$T"
    pids=()
    trap scratch_cleanup EXIT
}
scratch_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step() { echo "--- $*"; }
# The median of the numbers on standard input, one per line (the benchmarks' rounds).
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fail() {
    echo "FAIL: $*" >&2
    echo "--- last lines of the server log:" >&2
    tail -n 30 "$T/server.log" | cut -c1-400 >&2 || true
    exit 1
}

# Access lines reach $T/server.log in batches, at least every half second: wait for them.
# log_count PATTERN [AT_LEAST]
log_count() {
    local n=0
    for _ in $(seq 30); do
        n=$(grep -c -- "$1" "$T/server.log" || true)
        [ "$n" -ge "${2:-1}" ] && break
        sleep 0.1
    done
    echo "$n"
}
log_has() { [ "$(log_count "$1")" -ge 1 ]; }

# Writes $T/nginx/nginx.conf: Debian's nginx.conf as far as serving files goes (sendfile, tcp_nopush,
# workers), with the given server blocks, access_log line and connections per worker (Debian's 768 is
# too few for the benchmarks' idle clients). Start it with nginx_start.
# nginx_conf SERVERS [ACCESS_LOG] [WORKER_CONNECTIONS]
nginx_conf() {
    local servers=$1 access_log=${2:-access_log off;} worker_connections=${3:-4096}
    mkdir -p "$T/nginx/tmp"
    cat >"$T/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections $worker_connections; }
http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    $access_log
    client_body_temp_path $T/nginx/tmp; proxy_temp_path $T/nginx/tmp; fastcgi_temp_path $T/nginx/tmp;
    uwsgi_temp_path $T/nginx/tmp; scgi_temp_path $T/nginx/tmp;
    $servers
}
CONF
}
# Starts nginx in the background; its PID is in nginx_pid and in pids.
nginx_start() {
    nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" &
    nginx_pid=$!
    pids+=("$nginx_pid")
}

# server_address PID [LOG]: waits for our server's "on http://127.0.0.1:PORT" line in LOG (default
# $T/server.log) and sets port and base; fails when the server exits first or stays silent for 10 s.
server_address() {
    local pid=$1 log=${2:-$T/server.log}
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "server exited at startup (its log: $log)"
        sleep 0.1
    done
    [ -n "$port" ] || fail "server did not report its address"
    # shellcheck disable=SC2034 # read by the suites that source this
    base=http://127.0.0.1:$port
}

# apt_root DIR URL: an apt configuration of its own in DIR (use it with APT_CONFIG=DIR/apt.conf) for the
# suite "stable" at URL, trusting only the throw-away key in $T/keys.
apt_root() {
    local r=$1
    mkdir -p "$r"/{etc/apt/apt.conf.d,etc/apt/preferences.d,etc/apt/trusted.gpg.d,state/lists/partial} \
        "$r"/{cache/archives/partial,log,download}
    touch "$r/state/status"
    echo "deb [signed-by=$T/keys/key.gpg] $2 stable main" >"$r/etc/apt/sources.list"
    cat >"$r/apt.conf" <<CONF
Dir "$r/";
Dir::Etc "$r/etc/apt/";
Dir::State "$r/state/";
Dir::State::status "$r/state/status";
Dir::Cache "$r/cache/";
Dir::Log "$r/log/";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Debug::NoLocking "true";
CONF
}

# dnf_install DIR URL: dnf installs xenprov-big (which pulls in xenprov-hello) from the repository at URL
# into the installroot DIR/root, with no other repository; its output is in DIR/dnf.log, shown on failure.
dnf_install() {
    local d=$1
    mkdir -p "$d"
    dnf -y -q --installroot="$d/root" --releasever=1 --setopt=reposdir=/dev/null \
        --setopt=cachedir="$d/cache" --setopt=install_weak_deps=False \
        --repofrompath=xenprov,"$2" --repo=xenprov --nogpgcheck install xenprov-big \
        >"$d/dnf.log" 2>&1 || { cat "$d/dnf.log"; return 1; }
}
