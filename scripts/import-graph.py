#!/usr/bin/env python3
"""Import graph of swarmgate's src/: which module names which, and the cycles among them.

usage: python3 scripts/import-graph.py [--level 1|2|3] [--edges]      (from the project root)

A node is a top-level module (--level 1: `proxy`, `table`, `app`) or a file-level module (--level 2, the default:
`proxy::handler`, `middleware::mod`; --level 3 goes one folder deeper, `tls::acme::order`). An arrow A -> B is a `crate::…` path written in A's non-test code (the text
before its first `#[cfg(test)]`; `tests.rs` and `*_tests.rs` files are skipped), plus `super::x` paths resolved
against A's folder. Cycles are the strongly connected components with more than one node, printed with their members;
the last line counts them. Exit status 0 when there is no cycle. Pure text reading: no build needed.
"""
import os
import re
import sys
from collections import defaultdict

SRC = "src"
level = int(sys.argv[sys.argv.index("--level") + 1]) if "--level" in sys.argv else 2
show_edges = "--edges" in sys.argv


def module_path(path):
    """src/proxy/handler.rs -> ['proxy', 'handler']; src/proxy/mod.rs -> ['proxy', 'mod']."""
    rel = os.path.relpath(path, SRC)[:-3]
    return rel.split(os.sep)


def node(parts):
    if level == 1:
        return parts[0]
    return "::".join(parts[:level])


def exists(parts):
    base = os.path.join(SRC, *parts)
    return os.path.isfile(base + ".rs") or os.path.isdir(base)


def resolve(parts):
    """The longest prefix of a crate path that is a file or folder module, as a node."""
    best = None
    for i in range(1, len(parts) + 1):
        if exists(parts[:i]):
            best = parts[:i]
    if best is None:
        return None
    if os.path.isdir(os.path.join(SRC, *best)) and len(best) < level:
        best = best + ["mod"]
    return node(best)


def non_test(text):
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]


def strip_comments(text):
    return "\n".join(line.split("//")[0] for line in text.split("\n"))


edges = defaultdict(set)
nodes = set()
for root, _, files in os.walk(SRC):
    for f in files:
        if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs"):
            continue
        p = os.path.join(root, f)
        parts = module_path(p)
        if parts[-1] in ("lib", "main"):
            continue
        me = node(parts)
        nodes.add(me)
        text = strip_comments(non_test(open(p, encoding="utf-8", errors="replace").read()))
        folder = parts[:-1] if parts[-1] == "mod" else parts[:-1]
        for path in re.findall(r"\bcrate((?:::\w+)+)", text):
            target = resolve(path.strip(":").split("::"))
            if target and target != me:
                edges[me].add(target)
        for path in re.findall(r"\bsuper((?:::\w+)+)", text):
            up = folder[:-1] if parts[-1] == "mod" else folder
            target = resolve(up + path.strip(":").split("::")) if up else None
            if target and target != me:
                edges[me].add(target)


def sccs(graph, vertices):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(vertices):
        if v not in index:
            visit(v)
    return out


cycles = [c for c in sccs(edges, nodes | set(edges)) if len(c) > 1]
if show_edges:
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f"{a} -> {b}")
for c in sorted(cycles, key=len, reverse=True):
    inside = set(c)
    arrows = sorted(f"{a}->{b}" for a in c for b in edges[a] if b in inside)
    print(f"cycle of {len(c)}: {', '.join(c)}")
    print(f"    arrows: {'; '.join(arrows)}")
print(f"import graph (level {level}): {len(nodes)} modules, {sum(len(v) for v in edges.values())} arrows, "
      f"{len(cycles)} cycles ({sum(len(c) for c in cycles)} modules in them)")
sys.exit(1 if cycles else 0)
