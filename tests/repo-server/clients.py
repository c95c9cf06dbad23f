#!/usr/bin/env python3
"""Raw-socket clients for the repo-server suite: what curl cannot send or would normalise.

Each subcommand exits non-zero with a message naming what went wrong. Every socket has a timeout and every
loop is bounded, so nothing here can hang the suite.
"""
import argparse
import socket
import sys
import time

HOST = "127.0.0.1"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_response(s, head_request=False):
    """Reads one HTTP/1.1 response: (status, headers dict, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            fail(f"connection closed before a full response head: {buf[:200]!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    length = 0 if head_request else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            fail("connection closed inside a response body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def request(port, target, extra=b""):
    s = connect(port)
    s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n")
    status, headers, body, _ = read_response(s)
    s.close()
    return status, headers, body


def hostile(args):
    """Every request target of the corpus must be refused (400/404) and never return the canary."""
    canary = args.canary.encode()
    count = 0
    with open(args.corpus, "rb") as f:
        for line in f:
            target = line.rstrip(b"\n")
            if not target or target.startswith(b"#"):
                continue
            status, _, body = request(args.port, target)
            if status not in (400, 404):
                fail(f"{target!r} answered {status}, expected 400 or 404")
            if canary in body:
                fail(f"{target!r} leaked the file outside the root")
            count += 1
    print(f"hostile paths: {count} requests refused, none leaked")


def pipeline(args):
    """Three requests in one segment; responses must come back complete and in order."""
    s = connect(args.port)
    s.sendall(
        b"GET /curl/small.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        b"HEAD /curl/big.img HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /curl/small.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n"
    )
    expected = open(args.small, "rb").read()
    status, _, body, rest = read_response(s)
    if (status, body) != (200, expected):
        fail(f"pipelined response 1: {status} {body[:40]!r}")
    # put back what was read past the first response
    s2 = _Prefixed(s, rest)
    status, headers, _, rest = read_response(s2, head_request=True)
    if status != 200 or int(headers["content-length"]) != args.big_size:
        fail(f"pipelined HEAD: {status} {headers}")
    status, _, body, _ = read_response(_Prefixed(s, rest))
    if (status, body) != (206, expected[:5]):
        fail(f"pipelined range: {status} {body!r}")
    print("pipelining: 3 responses in order")


class _Prefixed:
    """A socket whose first recv returns bytes already read."""

    def __init__(self, sock, prefix):
        self.sock, self.prefix = sock, prefix

    def recv(self, n):
        if self.prefix:
            out, self.prefix = self.prefix, b""
            return out
        return self.sock.recv(n)


def oversized(args):
    """Request heads above the cap get 431; the server stays up."""
    for name, extra in [
        ("one 64 KiB header", b"X-Big: " + b"a" * 65536 + b"\r\n"),
        ("2000 small headers", b"".join(b"X-H%d: v\r\n" % i for i in range(2000))),
    ]:
        s = connect(args.port)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        status, _, _, _ = read_response(s)
        if status != 431:
            fail(f"{name}: {status}, expected 431")
        s.close()
    status, _, _ = request(args.port, b"/healthz")
    if status != 200:
        fail(f"server unhealthy after oversized requests: {status}")
    print("oversized headers: 431")


def timed_request(port, probe):
    started = time.monotonic()
    status, _, _ = request(port, probe.encode())
    if status != 200:
        fail(f"normal request during the attack: {status}")
    return time.monotonic() - started


def slow(args):
    """N clients trickle request headers a byte at a time; a normal request must still be answered at
    once, and the header timeout must end the trickling connections."""
    conns = []
    for _ in range(args.count):
        s = connect(args.port)
        s.sendall(b"G")
        conns.append(s)
    worst = 0.0
    deadline = time.monotonic() + args.seconds
    payload = b"ET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000
    i = 0
    closed = 0
    while time.monotonic() < deadline and closed < len(conns):
        closed = 0
        for s in conns:
            try:
                s.sendall(payload[i : i + 1])
            except OSError:
                closed += 1
        i += 1
        worst = max(worst, timed_request(args.port, args.probe))
        time.sleep(0.25)
    print(f"slow clients: {len(conns)} trickling, normal request worst latency {worst * 1000:.1f} ms")
    if worst > args.max_latency:
        fail(f"a normal request took {worst:.2f}s while clients trickled headers")
    # The header timeout must have closed them: a read returns end of stream (or a 408) soon.
    still_open = 0
    for s in conns:
        s.settimeout(args.seconds)
        try:
            data = s.recv(4096)
            if data and not data.startswith(b"HTTP/1.1 408"):
                still_open += 1
        except socket.timeout:
            still_open += 1
        except OSError:
            pass
        s.close()
    if still_open:
        fail(f"{still_open} trickling connections outlived the header timeout")
    print(f"slow clients: all {len(conns)} closed by the header timeout")


def open_connections(port):
    status, _, body = request(port, b"/metrics")
    if status != 200:
        fail(f"/metrics answered {status}")
    for line in body.decode().splitlines():
        if line.startswith("xenprov_repo_connections_open "):
            return int(float(line.split()[-1]))
    fail("no xenprov_repo_connections_open in /metrics")


def idle(args):
    """N connections that never send: all accepted and held open without harm (a normal request is
    answered at once), then closed by the idle timeout."""
    conns = [connect(args.port) for _ in range(args.count)]
    connected = time.monotonic()
    # The kernel completes connections before the server accepts them; wait until it has them all.
    while (open_now := open_connections(args.port)) < args.count:
        if time.monotonic() - connected > 10:
            fail(f"server holds {open_now} of {args.count} idle connections after 10s")
        time.sleep(0.05)
    accepted = time.monotonic() - connected
    latency = timed_request(args.port, args.probe)
    print(
        f"idle clients: {len(conns)} held (all accepted {accepted * 1000:.0f} ms after the last connect), "
        f"normal request {latency * 1000:.1f} ms"
    )
    if latency > args.max_latency:
        fail(f"a normal request took {latency:.2f}s with {args.count} idle connections open")
    started = time.monotonic()
    for s in conns:
        s.settimeout(args.seconds)
        try:
            if s.recv(16):
                fail("an idle connection received data")
        except socket.timeout:
            fail(f"an idle connection was still open after {args.seconds}s")
        except OSError:
            pass
        s.close()
    print(f"idle clients: all closed by the idle timeout within {time.monotonic() - started:.1f}s")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hostile")
    h.add_argument("--corpus", required=True)
    h.add_argument("--canary", required=True)
    pl = sub.add_parser("pipeline")
    pl.add_argument("--small", required=True)
    pl.add_argument("--big-size", type=int, required=True)
    sub.add_parser("oversized")
    for name in ("slow", "idle"):
        c = sub.add_parser(name)
        c.add_argument("--count", type=int, required=True)
        c.add_argument("--seconds", type=float, required=True, help="how long to wait for the server to close")
        c.add_argument("--max-latency", type=float, default=2.0)
        c.add_argument("--probe", default="/curl/small.txt", help="the normal request whose latency is measured")
    args = p.parse_args()
    {"hostile": hostile, "pipeline": pipeline, "oversized": oversized, "slow": slow, "idle": idle}[args.cmd](args)


if __name__ == "__main__":
    main()
