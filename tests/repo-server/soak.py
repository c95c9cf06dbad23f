#!/usr/bin/python3
"""Hostile load for the repo server's soak test (bench/soak.sh, tests/suites/16-soak.sh), on 127.0.0.1 only.

For --seconds it keeps up, all at once:
- idle: connections that never send a byte (5,000 by default);
- slowloris: connections sending a request head a byte every few seconds, never finishing it;
- slow bodies: POST /events/a/b with Content-Length: 1000, 2 bytes of body, then a byte every few seconds;
- stalled HTTP/2: connections whose SETTINGS_INITIAL_WINDOW_SIZE is 0, each opening many streams for the
  large file (the server may send none of its bytes) and PINGing, so that they never look idle;
- range storms: keep-alive connections asking again and again for many one-byte ranges of the large file.
A connection the server closes is opened again a second later, so the pressure lasts the whole run.
Prints "ready" once the idle connections are open, and at the end a line of counts per kind (also written
as JSON to --stats).

It measures nothing of the normal client: that is another process (curl), so that this program's own CPU
use on a busy machine is not counted as the server's latency. Python rather than a Rust program: Debian's
python3-h2 gives a real HTTP/2 framer and flow control without building anything on the test machine, and
the raw HTTP/1 clients of the suite (clients.py) are Python already. Run it with /usr/bin/python3, where
Debian's python3-h2 is installed.
"""
import argparse
import asyncio
import json
import os
import random
import resource
import signal
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HOST = "127.0.0.1"  # loopback only: this program must never load anything else
CONNECT_TIMEOUT = 10
REOPEN_AFTER = 1.0
KINDS = ("idle", "slowloris", "slow_body", "h2_stalled", "range_storm")

stats = {
    k: {"opened": 0, "open": 0, "peak_open": 0, "closed_by_server": 0, "connect_failed": 0, "errors": 0,
        "responses": 0, "status": {}}
    for k in KINDS
}
STOP = None  # a future, done when the run is over


def count_status(s, data):
    """Counts the status of a response that starts in `data` (HTTP/1 only)."""
    if data.startswith(b"HTTP/1."):
        code = data[9:12].decode("latin-1")
        s["status"][code] = s["status"].get(code, 0) + 1
        s["responses"] += 1


async def wait_or_stop(aw, timeout=None):
    """Waits for the awaitable `aw` until the run is over or `timeout`; returns its task if it finished."""
    task = asyncio.ensure_future(aw)
    await asyncio.wait([task, STOP], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task
    task.cancel()
    return None


async def read_or_stop(reader, timeout=None):
    """The server's next bytes; b"" when it closed, None when the run ended or `timeout` passed first."""
    task = await wait_or_stop(reader.read(65536), timeout)
    return None if task is None else task.result()


async def keep(kind, port, session):
    """Runs `session` on a new connection, again and again, until the run is over."""
    s = stats[kind]
    while not STOP.done():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            s["connect_failed"] += 1
            await wait_or_stop(asyncio.sleep(REOPEN_AFTER))
            continue
        s["opened"] += 1
        s["open"] += 1
        s["peak_open"] = max(s["peak_open"], s["open"])
        try:
            await session(reader, writer, s)
            if not STOP.done():
                s["closed_by_server"] += 1
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                h2.exceptions.H2Error):
            if not STOP.done():
                s["errors"] += 1
        finally:
            s["open"] -= 1
            writer.close()
        await wait_or_stop(asyncio.sleep(REOPEN_AFTER))


async def idle(reader, writer, s):
    """Sends nothing; returns when the server closes the connection."""
    while True:
        data = await read_or_stop(reader)
        if not data:
            return
        count_status(s, data)


def trickle(head, interval):
    """A session that sends `head`, then one byte every `interval` seconds (jittered), and reads whatever
    the server answers until it closes."""

    async def session(reader, writer, s):
        writer.write(head)
        await writer.drain()
        while True:
            data = await read_or_stop(reader, interval * random.uniform(0.75, 1.25))
            if data == b"" or STOP.done():
                return
            if data:
                count_status(s, data)
                continue
            writer.write(b"a")
            await writer.drain()

    return session


def h2_stalled(path, streams, ping_interval):
    """HTTP/2 with a zero initial stream window: the server may send headers but no DATA; streams for
    `path` are opened at once, and a PING goes out every `ping_interval` so that bytes keep moving."""

    async def session(reader, writer, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
        )
        conn.initiate_connection()
        for _ in range(streams):
            conn.send_headers(
                conn.get_next_available_stream_id(),
                [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", HOST)],
                end_stream=True,
            )
        writer.write(conn.data_to_send())
        await writer.drain()
        last_ping = time.monotonic()
        while True:
            data = await read_or_stop(reader, ping_interval)
            if data == b"" or STOP.done():
                return
            if data:
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        s["responses"] += 1
                        code = dict(event.headers).get(":status", "?")
                        s["status"][code] = s["status"].get(code, 0) + 1
                    elif isinstance(event, h2.events.StreamReset):
                        s["status"]["reset"] = s["status"].get("reset", 0) + 1
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        s["status"]["goaway"] = s["status"].get("goaway", 0) + 1
            if time.monotonic() - last_ping >= ping_interval:
                conn.ping(os.urandom(8))
                last_ping = time.monotonic()
            out = conn.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()

    return session


def range_storm(path, ranges):
    """Keep-alive requests for `ranges` one-byte ranges of `path`, each read whole before the next."""
    spec = ",".join(f"{2 * i}-{2 * i}" for i in range(ranges))
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nRange: bytes={spec}\r\n\r\n".encode()

    async def session(reader, writer, s):
        while True:
            writer.write(request)
            await writer.drain()
            head = await wait_or_stop(reader.readuntil(b"\r\n\r\n"))
            if head is None:
                return
            head = head.result()
            count_status(s, head)
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise ValueError("range response without Content-Length")
            while length > 0:  # read and drop: a 200 with the whole file must not be held in memory
                data = await read_or_stop(reader)
                if not data:
                    return
                length -= len(data)
            if b"connection: close" in head.lower():
                await read_or_stop(reader)
                return

    return session


async def run(args):
    global STOP
    loop = asyncio.get_running_loop()
    STOP = loop.create_future()
    # SIGTERM ends the run early and still prints the counts: the caller stops it once its probes are done.
    loop.add_signal_handler(signal.SIGTERM, lambda: STOP.done() or STOP.set_result(None))
    tasks = []
    # The idle connections first, in batches: a listen backlog (nginx's is 511) overflowing would only
    # add SYN retries to the ramp-up.
    for i in range(args.idle):
        tasks.append(asyncio.ensure_future(keep("idle", args.port, idle)))
        if i % 250 == 249:
            await asyncio.sleep(0.05)
    ramp = time.monotonic()
    while stats["idle"]["open"] < args.idle and time.monotonic() - ramp < 30 and not STOP.done():
        await asyncio.sleep(0.1)
    h2_port = args.h2_port or args.port
    for n, kind, port, session in [
        (args.slowloris, "slowloris", args.port, trickle(b"GET /small.bin HTTP/1.1\r\nHost: t\r\nX-Slow: ", 3)),
        (args.slow_bodies, "slow_body", args.port,
         trickle(b"POST /events/a/b HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: 1000\r\n\r\nst", 5)),
        (args.h2, "h2_stalled", h2_port, h2_stalled(args.large, args.h2_streams, 1)),
        (args.range_storms, "range_storm", args.port, range_storm(args.large, args.ranges)),
    ]:
        tasks += [asyncio.ensure_future(keep(kind, port, session)) for _ in range(n)]
    await asyncio.sleep(1)
    print(f"ready: {stats['idle']['open']} idle connections open, "
          f"{sum(stats[k]['open'] for k in KINDS[1:])} attacking", flush=True)
    await wait_or_stop(asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - ramp))))
    if not STOP.done():
        STOP.set_result(None)
    await asyncio.wait(tasks, timeout=10)
    for kind, s in stats.items():
        del s["open"]
        print(f"{kind:12} opened {s['opened']:5}  peak open {s['peak_open']:5}  closed by server "
              f"{s['closed_by_server']:5}  connect failed {s['connect_failed']}  errors {s['errors']}  "
              f"responses {s['responses']} {s['status']}")
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(stats, f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True, help="HTTP/1.1 port on 127.0.0.1")
    p.add_argument("--h2-port", type=int, help="HTTP/2 (prior knowledge) port, if not --port")
    p.add_argument("--seconds", type=float, required=True, help="longest run, ramp-up included (SIGTERM ends it sooner)")
    p.add_argument("--large", default="/large.bin", help="the large file the streams and ranges ask for")
    p.add_argument("--idle", type=int, default=5000)
    p.add_argument("--slowloris", type=int, default=200)
    p.add_argument("--slow-bodies", type=int, default=100)
    p.add_argument("--h2", type=int, default=20, help="stalled HTTP/2 connections")
    p.add_argument("--h2-streams", type=int, default=100, help="streams opened on each")
    p.add_argument("--range-storms", type=int, default=8, help="connections asking for many ranges")
    p.add_argument("--ranges", type=int, default=200, help="ranges per request (the server's cap is 256)")
    p.add_argument("--stats", help="file for the counts, as JSON")
    args = p.parse_args()
    # One descriptor per connection: lift the soft limit to the hard one.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    needed = args.idle + args.slowloris + args.slow_bodies + args.h2 + args.range_storms + 64
    if hard < needed:
        sys.exit(f"open-files limit {hard} is below the {needed} connections asked for")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
