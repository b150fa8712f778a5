#!/usr/bin/env python3
"""Memory per idle keep-alive connection, and memory given back after they close.

Opens N connections to 127.0.0.1:PORT, sends one request on each (HTTP/1.1 keep-alive, or HTTP/2 prior
knowledge with --h2), reads its answer, keeps them all open and idle for --hold seconds, then closes them all
and waits --after seconds. Prints the resident memory (VmRSS, RssAnon) of the process tree PID before, with
the idle connections and after, as one JSON line:

    benches/idle_conns.py --pid 1234 --port 8081 -n 5000 --hold 5 --after 60

Loopback only; every wait is bounded. The open-files limit is raised to the hard limit (N + 100 needed).
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time


def tree(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(p) for p in out]


def rss_kib(pid):
    """(VmRSS, RssAnon) in KiB summed over the process tree."""
    vm = anon = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        vm += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
        except FileNotFoundError:
            pass
    return vm, anon


def h2_request(host, path):
    """The HTTP/2 preface, an empty SETTINGS frame and one GET as a HEADERS frame (HPACK literals, no Huffman)."""
    def frame(kind, flags, stream, payload):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def literal(index, value):  # literal without indexing, indexed name
        v = value.encode()
        return bytes([index]) + bytes([len(v)]) + v

    block = bytes([0x82, 0x86]) + literal(0x04, path) + literal(0x01, host)  # GET, http, :path, :authority
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    return preface + frame(0x4, 0, 0, b"") + frame(0x1, 0x5, 1, block)  # END_STREAM | END_HEADERS


async def one(port, path, h2, conns, failures):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        if h2:
            w.write(h2_request(f"127.0.0.1:{port}", path))
        else:
            w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: idle-conns\r\n\r\n".encode())
        await w.drain()
        data = await asyncio.wait_for(r.read(4096), 10)
        if not data:
            failures.append("closed")
            w.close()
            return
        if h2:
            # Acknowledge the server's SETTINGS so it keeps the connection as any client would.
            w.write(bytes([0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]))
            await w.drain()
        conns.append((r, w))
    except Exception as e:  # noqa: BLE001 - counted and reported
        failures.append(type(e).__name__)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int, required=True, help="the proxy's process (its children are counted too)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--path", default="/bench")
    ap.add_argument("--h2", action="store_true")
    ap.add_argument("--hold", type=float, default=5.0, help="seconds the connections stay idle before measuring")
    ap.add_argument("--after", type=float, default=60.0, help="seconds after closing before the last measure")
    ap.add_argument("--batch", type=int, default=200, help="connections opened at a time")
    ap.add_argument("--ready", help="holder mode (compare.sh): write the counts to this file once the "
                    "connections are open, hold them --hold seconds (or until killed), then exit")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.n + 100), hard))

    before = rss_kib(args.pid)
    conns, failures = [], []
    t0 = time.monotonic()
    for i in range(0, args.n, args.batch):
        await asyncio.gather(*(one(args.port, args.path, args.h2, conns, failures)
                               for _ in range(min(args.batch, args.n - i))))
    opened_s = time.monotonic() - t0
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"connections": len(conns), "failures": len(failures), "open_s": round(opened_s, 2)}, f)
        os.replace(tmp, args.ready)
        await asyncio.sleep(args.hold)
        return 0
    await asyncio.sleep(args.hold)
    idle = rss_kib(args.pid)
    # Still open? A closed connection reads EOF at once.
    alive = 0
    for r, _ in conns:
        try:
            d = await asyncio.wait_for(r.read(1), 0.001)
            if d:
                alive += 1
        except asyncio.TimeoutError:
            alive += 1
    for _, w in conns:
        w.close()
    await asyncio.sleep(1)
    closed = rss_kib(args.pid)
    await asyncio.sleep(max(0.0, args.after - 1))
    after = rss_kib(args.pid)
    n = max(len(conns), 1)
    print(json.dumps({
        "connections": len(conns), "alive_at_measure": alive, "failures": len(failures),
        "failure_kinds": sorted(set(failures)), "open_s": round(opened_s, 2), "h2": args.h2,
        "rss_before_kib": before[0], "anon_before_kib": before[1],
        "rss_idle_kib": idle[0], "anon_idle_kib": idle[1],
        "per_conn_kib": round((idle[0] - before[0]) / n, 2),
        "rss_1s_after_close_kib": closed[0], "rss_after_kib": after[0], "anon_after_kib": after[1],
        "after_s": args.after,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
