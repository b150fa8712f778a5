#!/usr/bin/env python3
"""Resource attacks against a local swarmgate, measured in one run, printed as a markdown table.

Starts the release binaries (target/release/swarmgate and target/release/whoami) on loopback ports, then runs
four attacks one after the other:

  slowloris    N connections sending request headers one short line every 5 s, never finishing them
  slow body    N POSTs declaring Content-Length: 100, sending 4 bytes, then silence
  zero-byte    N connections that send nothing
  idle h1      M keep-alive connections that send one request, read the answer, then stay silent

For each: swarmgate's RSS before and at its peak while the connections are held, when the server closed
them (seconds after they were opened: median and last), how many were still open at the end of the
observation window (the bound plus 30 s), and whether a new client was served meanwhile (one GET on a
fresh connection every second, each with a 2 s deadline).

Everything stays on 127.0.0.1, every wait is bounded, and the processes started are stopped at the end.
By default swarmgate runs with its default timeouts (readHeaderTimeout 60s, bodyIdleTimeout 60s,
readTimeout 60s, idleTimeout 180s: about 6.5 minutes in all); --short sets them all to 10 s.

    ulimit -n 20000   # the client side holds up to M sockets
    cargo build --release --bin swarmgate --bin whoami
    python3 scripts/resource-attack.py [--short] [--n 1000] [--idle 5000]
"""

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_port(port, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


async def served(port):
    """One GET on a fresh connection, 2 s deadline: did a 200 come back?"""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        line = await asyncio.wait_for(r.readline(), 2)
        w.close()
        return line.startswith(b"HTTP/1.1 200")
    except (OSError, asyncio.TimeoutError):
        return False


async def hold(port, opener, t0, closed, stop):
    """Opens one attack connection and records when the server closes it."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
    except (OSError, asyncio.TimeoutError):
        closed.append(("refused", 0.0))
        return
    try:
        await opener(r, w, stop)
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(r.read(65536), 1)
            except asyncio.TimeoutError:
                continue
            if not data:
                closed.append(("closed", time.monotonic() - t0))
                return
        closed.append(("open", 0.0))
    except (OSError, ConnectionError):
        closed.append(("closed", time.monotonic() - t0))
    finally:
        w.close()


def slowloris(r, w, stop):
    async def run():
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await w.drain()

        async def trickle():
            while not stop.is_set():
                await asyncio.sleep(5)
                try:
                    w.write(b"X-a: b\r\n")
                    await w.drain()
                except (OSError, ConnectionError):
                    return

        asyncio.ensure_future(trickle())

    return run()


async def slow_body(r, w, stop):
    w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
    await w.drain()


async def zero_byte(r, w, stop):
    return


async def idle_keepalive(r, w, stop):
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    if m:
        await asyncio.wait_for(r.readexactly(int(m.group(1))), 30)


async def attack(name, opener, count, port, pid, window):
    baseline = rss_kib(pid)
    closed, stop = [], asyncio.Event()
    t0 = time.monotonic()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(hold(port, opener, t0, closed, stop)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    peak, probes, ok = baseline, 0, 0
    end = t0 + window
    while time.monotonic() < end and len(closed) < count:
        peak = max(peak, rss_kib(pid))
        probes += 1
        ok += await served(port)
        await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    times = sorted(t for k, t in closed if k == "closed")
    still = sum(1 for k, _ in closed if k == "open")
    refused = sum(1 for k, _ in closed if k == "refused")
    return {
        "name": name,
        "count": count,
        "rss0": baseline,
        "peak": peak,
        "median": statistics.median(times) if times else None,
        "last": times[-1] if times else None,
        "closed": len(times),
        "open": still,
        "refused": refused,
        "probes": probes,
        "ok": ok,
    }


def fmt_s(x):
    return "—" if x is None else f"{x:.1f}"


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="all timeouts 10 s instead of the defaults")
    ap.add_argument("--n", type=int, default=1000, help="connections per attack (slowloris, body, zero)")
    ap.add_argument("--idle", type=int, default=5000, help="idle keep-alive connections")
    ap.add_argument("--bindir", default=os.path.join(ROOT, "target", "release"), help="where the binaries are")
    args = ap.parse_args()

    bindir = args.bindir
    backend_port, web_port = free_port(), free_port()
    dyn = f"/tmp/resource-attack-{os.getpid()}.yml"
    with open(dyn, "w") as f:
        f.write(
            "http:\n  routers:\n    all:\n      rule: PathPrefix(`/`)\n      service: s\n"
            f"  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: http://{HOST}:{backend_port}\n"
        )
    flags = [
        f"--entrypoints.web.address={HOST}:{web_port}",
        f"--providers.file.filename={dyn}",
    ]
    bounds = {"header": 60, "body": 60, "idle": 180}
    if args.short:
        rt = "--entryPoints.web.transport.respondingTimeouts."
        flags += [rt + "readHeaderTimeout=10s", rt + "bodyIdleTimeout=10s", rt + "readTimeout=10s", rt + "idleTimeout=10s"]
        bounds = {"header": 10, "body": 10, "idle": 10}
    env = dict(os.environ, SWARMGATE_LOG="warn")
    backend = subprocess.Popen(
        [os.path.join(bindir, "whoami"), "--listen", f"{HOST}:{backend_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    gate = subprocess.Popen([os.path.join(bindir, "swarmgate"), *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not (wait_port(backend_port) and wait_port(web_port)):
            sys.exit("processes did not start")
        # The route is live once a request is served.
        for _ in range(100):
            if await served(web_port):
                break
            await asyncio.sleep(0.1)
        rows = []
        slack = 30
        rows.append(await attack("slowloris", slowloris, args.n, web_port, gate.pid, bounds["header"] + slack))
        rows.append(await attack("slow body", slow_body, args.n, web_port, gate.pid, bounds["body"] + slack))
        rows.append(await attack("zero-byte", zero_byte, args.n, web_port, gate.pid, bounds["header"] + slack))
        rows.append(await attack("idle keep-alive", idle_keepalive, args.idle, web_port, gate.pid, bounds["idle"] + slack))
    finally:
        gate.terminate()
        backend.terminate()
        for p in (gate, backend):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        os.unlink(dyn)

    mode = "short (all 10 s)" if args.short else "defaults (readHeaderTimeout 60s, bodyIdleTimeout 60s, readTimeout 60s, idleTimeout 180s)"
    print(f"swarmgate {mode}; {os.cpu_count()} CPUs; loopback\n")
    print("| attack | conns | RSS before → peak (MiB) | closed after, median / last (s) | closed / still open / refused | new client served meanwhile |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['count']} | {r['rss0'] / 1024:.1f} → {r['peak'] / 1024:.1f} | "
            f"{fmt_s(r['median'])} / {fmt_s(r['last'])} | {r['closed']} / {r['open']} / {r['refused']} | "
            f"{'yes' if r['ok'] == r['probes'] else 'no'} ({r['ok']}/{r['probes']}) |"
        )


if __name__ == "__main__":
    asyncio.run(main())
