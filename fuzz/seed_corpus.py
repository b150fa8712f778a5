#!/usr/bin/env python3
"""Writes seed inputs for every fuzz target into fuzz/seeds/<target>/ from the project's own test tables,
fixtures, config/ and examples/ files. Run from the repository root; then minimise the seeds into
fuzz/corpus/<target>/ with `cargo +nightly fuzz cmin` (see fuzz/README.md)."""

import glob
import hashlib
import os
import re
import sys

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "fuzz", "seeds")

# Rust string literals: raw strings r"..." / r#"..."# and normal "..." with escapes.
LIT = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "\n":  # line continuation: skip leading whitespace of the next line
                i += 2
                while i < len(s) and s[i] in " \t":
                    i += 1
                continue
            simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            if n == "x":
                out.append(chr(int(s[i + 2:i + 4], 16)))
                i += 4
                continue
            if n == "u":
                end = s.index("}", i)
                out.append(chr(int(s[i + 3:end], 16)))
                i = end + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def literals(path):
    text = open(path, encoding="utf-8").read()
    for m in LIT.finditer(text):
        if m.group(2) is not None:
            yield m.start(), m.group(2)
        else:
            try:
                yield m.start(), unescape(m.group(3))
            except (ValueError, IndexError):
                continue


seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data or len(data) > 8192:
        return
    seeds.setdefault(target, set()).add(data)


RULE_START = re.compile(r"^[!( ]*[A-Z][A-Za-z]*\(")
URL = re.compile(r"^https?://")


def url_request(u):
    rest = re.sub(r"^https?://", "", u)
    split = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0] or [len(rest)])
    host, target = rest[:split], rest[split:] or "/"
    return f"{host}\n{target}\nGET"


rust_files = sorted(glob.glob("src/**/*.rs", recursive=True) + glob.glob("tests/**/*.rs", recursive=True))

# Rules, each alone and with the request URLs that follow it in its test table.
for path in rust_files:
    lits = list(literals(path))
    for i, (_, s) in enumerate(lits):
        if RULE_START.match(s) and ("`" in s or '"' in s) and "\n" not in s:
            add("rule", s)
            for _, u in lits[i + 1:i + 12]:
                if RULE_START.match(u):
                    break
                if URL.match(u):
                    add("rule", s + "\0" + url_request(u))
        if s.startswith("traefik.") and s.endswith(".rule"):
            pass
add("rule", "Host(`a.test`) && Header(`X-Api`, `1`)\0a.test\n/\nGET\nx-api: 1")
add("rule", "HostSNI(`a.test`) && ALPN(`h2`)\0a.test\nh2,http/1.1\nGET")
add("rule", "Method(`POST`) || Query(`a`, `b`)\0x\n/p?a=b\nPOST")

# Label maps: every `&[("traefik...", "..."), ...]` table in the label tests and check fixtures.
TUPLE = re.compile(r'\(\s*"((?:[^"\\]|\\.)*)"\s*,\s*"((?:[^"\\]|\\.)*)"\s*,?\s*\)', re.S)
for path in rust_files:
    text = open(path, encoding="utf-8").read()
    for block in re.finditer(r"&\[((?:\s*\(\s*\"traefik[^\]]*?\)\s*,?)+)\s*\]", text, re.S):
        pairs = [(unescape(k), unescape(v)) for k, v in TUPLE.findall(block.group(1))]
        if pairs:
            lines = ["stack_app"] + [f"{k}={v}" for k, v in pairs if "\n" not in k + v]
            add("labels", "\n".join(lines))
for path in sorted(glob.glob("tests/fixtures/check/*.yml") + glob.glob("examples/**/*.yml", recursive=True)
                   + glob.glob("examples/**/docker-compose.yml", recursive=True)):
    labels = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r'\s*-?\s*"?(traefik\.[^=:"]+)\s*[=:]\s*"?(.*?)"?\s*$', line)
        if m:
            v = m.group(2).strip().strip("'")
            labels.append(f"{m.group(1)}={v}")
    if labels:
        add("labels", "\n".join([os.path.basename(path).split(".")[0]] + labels))

# Dynamic configuration files: YAML and TOML literals in the sources and tests, plus files on disk.
for path in rust_files:
    for _, s in literals(path):
        if "\n" not in s:
            continue
        if re.search(r"^\[(http|tcp|tls)[.\]]", s, re.M):
            add("dynamic_toml", s)
        elif re.search(r"^\s*(http|tcp|tls):", s, re.M):
            add("dynamic_yaml", s)
for path in sorted(glob.glob("tests/fixtures/api/*.yml") + glob.glob("config/*.yml")
                   + glob.glob("examples/**/*.yml", recursive=True)):
    text = open(path, encoding="utf-8").read()
    if re.search(r"^(http|tcp|tls):", text, re.M):
        add("dynamic_yaml", text)
for path in sorted(glob.glob("**/*.toml", recursive=True)):
    if path.startswith(("target", "fuzz")) or path == "Cargo.toml":
        continue
    add("dynamic_toml", open(path, encoding="utf-8").read())

# Hosts: the request-host rows of the rule tests, and hosts of every URL in them.
for path in ["src/rule/tests.rs", "src/rule/host.rs"]:
    for _, s in literals(path):
        if URL.match(s):
            add("host", url_request(s).split("\n")[0])
        elif "\n" not in s and len(s) < 80 and re.match(r"^[\w.:\[\]@ -]*$", s) and ("." in s or ":" in s):
            add("host", s)
for h in ["Example.COM.:8080", "[::1]:80", "user@admin.test", "example.com:abc", ":99999", "a..", " a .", "xn--bcher-kva.example"]:
    add("host", h)

# Paths: every path in the rule tests' URLs, plus the issue's bypass attempts.
for _, s in literals("src/rule/tests.rs"):
    if URL.match(s):
        add("routing_path", url_request(s).split("\n")[1].split("?")[0])
    elif s.startswith("/") and "\n" not in s:
        add("routing_path", s)
for p in ["//admin", "/./admin", "/x/../admin", "/%2e/admin", "/.%2e/admin", "/%2", "/a%zz", "/%41%2F%2f", "*"]:
    add("routing_path", p)
for p in list(seeds.get("routing_path", ())):
    add("sanitize_path", p)
for p in ["/a/b//c/./../d/", "/%2E%2e/x", "a/../../b", "/..", "/.", "//", "/%2F..%2F", "/a/%2e%2E/b"]:
    add("sanitize_path", p)

# Header maps for hop-by-hop and forwarded-header rewriting.
FWD = [
    "u\nconnection: Upgrade\nupgrade: websocket\nhost: a.test",
    "\nconnection: X-Routed, keep-alive\nx-routed: 1\nte: trailers\ntransfer-encoding: chunked",
    "t\nx-forwarded-for: 10.1.1.1\nx-forwarded-host: evil\nx-real-ip: 1.2.3.4",
    "h\nx-forwarded-for: 10.1.1.1\nx-forwarded-proto: http\nx-forwarded-port: 1\nx-forwarded-server: s\nx-forwarded-prefix: /p\nx-forwarded-uri: /u\nx-real-ip: 1.2.3.4",
    "\nx-forwarded-tls-client-cert: abc\nx-forwarded-tls-client-cert-info: x\nx-forwarded-method: GET",
    "\nconnection: close\nconnection: x-a\nx-a: 1\nkeep-alive: 5\nproxy-connection: keep-alive\nproxy-authorization: Basic x\ntrailer: x",
    "tu\nconnection: x-forwarded-for, Upgrade\nx-forwarded-for: 1.1.1.1\nupgrade: h2c",
]
for f in FWD:
    add("forwarded", f)

# Sticky cookies: configured names and server URLs from the sticky tests, with Cookie headers.
sticky_lits = [s for _, s in literals("src/balance/sticky.rs")]
urls = [s for s in sticky_lits if URL.match(s)][:20]
names = [s for s in sticky_lits if "\n" not in s and 0 < len(s) < 40 and not URL.match(s) and " " not in s][:40]
for i, n in enumerate(names):
    add("sticky", "\n".join([n] + urls[i % max(len(urls), 1):][:3] + [f"cookie:{n}=b4e215ace41bed91; other=1"]))
add("sticky", "\nhttp://10.0.1.5:80\nhttp://10.0.1.6:80\ncookie:_633ff=b4e215ace41bed91")
add("sticky", "my cookie/é\nfirst\nsecond\ncookie: my_cookie__=\"first\" ; x=y")

# defaultRule templates: the template tests' templates, with a name and labels.
for _, s in literals("src/provider/docker/template.rs"):
    if "{{" in s and "\n" not in s:
        add("default_rule", f"{s}\nstack_web\nzone=eu\ntraefik.domain=example.com")
add("default_rule", "Host(`{{ normalize .Name }}.{{ index .Labels \"zone\" }}`)\n/My__App--1/\nzone=eu")

total = 0
for target, items in sorted(seeds.items()):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for data in items:
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{target}: {len(items)} seeds")
    total += len(items)
print(f"total {total}", file=sys.stderr)


# TOML seeds: the YAML seeds converted (when PyYAML is installed), so TOML gets the same shapes.
def toml_key(k):
    k = str(k)
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else json.dumps(k)


def toml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_scalar(x)}" for k, x in v.items()) + "}"
    return json.dumps("" if v is None else str(v))


def to_toml(d, path=()):
    out, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            out.append(f"{toml_key(k)} = {toml_scalar(v)}")
    for k, v in tables:
        p = path + (toml_key(k),)
        if isinstance(v, dict):
            out.append(f"\n[{'.'.join(p)}]")
            out.append(to_toml(v, p))
        else:
            for x in v:
                out.append(f"\n[[{'.'.join(p)}]]")
                out.append(to_toml(x, p))
    return "\n".join(out)


try:
    import json

    import yaml

    for data in sorted(seeds.get("dynamic_yaml", ())):
        try:
            doc = yaml.safe_load(data.decode("utf-8"))
        except Exception:
            continue
        if isinstance(doc, dict):
            try:
                add("dynamic_toml", to_toml(doc) + "\n")
            except Exception:
                continue
    d = os.path.join(OUT, "dynamic_toml")
    os.makedirs(d, exist_ok=True)
    for data in seeds.get("dynamic_toml", ()):
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"dynamic_toml (with converted YAML): {len(seeds.get('dynamic_toml', ()))} seeds")
except ImportError:
    pass
