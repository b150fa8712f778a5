#!/usr/bin/env python3
"""How long a large dynamic file takes to go live: writes an N-router file (one service each) over a watched
file of a running swarmgate and times until the last router answers. Loopback only, bounded by --limit.

    cargo build --release --bin swarmgate
    python3 scripts/config-scale.py target/release/swarmgate 20000
"""
import argparse, os, re, socket, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("binary")
ap.add_argument("routers", type=int)
ap.add_argument("--limit", type=float, default=120.0, help="give up after this many seconds")
a = ap.parse_args()

d = tempfile.mkdtemp()
dyn = os.path.join(d, "dynamic.yml")
big = os.path.join(d, "big.yml")
with open(dyn, "w") as f:
    f.write("http: {}\n")
with open(big, "w") as f:
    f.write("http:\n  routers:\n")
    for i in range(a.routers):
        f.write(f"    r{i}:\n      rule: \"Host(`h{i}.test`)\"\n      service: s{i}\n")
    f.write("  services:\n")
    for i in range(a.routers):
        f.write(f"    s{i}:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:1\"\n")

p = subprocess.Popen([a.binary, "--entrypoints.web.address=127.0.0.1:0", f"--providers.file.filename={dyn}",
                      "--providers.file.watch=true", "--providers.providersThrottleDuration=50ms"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                     env=dict(os.environ, SWARMGATE_LOG="info"))
addr = None
deadline = time.monotonic() + 20
while addr is None and time.monotonic() < deadline:
    m = re.search(r"entrypoint web listening on ([0-9.:]+)", p.stdout.readline())
    if m:
        addr = m.group(1)
if addr is None:
    p.kill()
    sys.exit("swarmgate did not start")
host, port = addr.rsplit(":", 1)
logs = []
threading.Thread(target=lambda: logs.extend(p.stdout), daemon=True).start()


def status(h):
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(100).decode(errors="replace").split()[1])


size = os.path.getsize(big)
t0 = time.monotonic()
os.rename(big, dyn)
while status(f"h{a.routers - 1}.test") == 404:
    if time.monotonic() - t0 > a.limit:
        print("not applied within the limit")
        break
    time.sleep(0.01)
took = time.monotonic() - t0
rss = next((l.split(":")[1].strip() for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")), "?")
p.kill()
p.wait()
print(f"{a.routers} routers ({size / 1e6:.1f} MB) applied in {took:.2f} s; RSS {rss}; "
      f"table updates logged: {sum(1 for l in logs if 'routing table updated' in l)}")
