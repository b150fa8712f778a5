#!/usr/bin/env python3
"""Traefik's provider test tables → JSON data for swarmgate's own tests.

Reads Traefik's Go sources at one tag (from a bare mirror, with `git show`), parses the composite literals of
the Docker-provider and label test tables (containers and labels in, expected `dynamic.Configuration` out)
and writes them as JSON files under tests/fixtures/traefik-tables/, each recording the tag and commit it
comes from. The expected configurations are written as Traefik's `json.Marshal` would write them: JSON
names from the struct tags, `omitempty` honoured, `json:"-"` fields left out, durations as Go prints them.

It also writes src/dynamic/traefik_schema.json: for every struct of Traefik's dynamic configuration, its
fields' JSON names and value kinds (string, bool, int, float, duration, list, map, struct). swarmgate uses it
to write configurations with Traefik's typed values (labels are text).

Tables read (v3; v2 has the first three under their v2 names, with its own schema written beside them):
pkg/provider/docker/config_test.go `TestDynConfBuilder_DefaultRule`, `TestDynConfBuilder_build`,
`TestDynConfBuilder_build_allowNonRunning`, `TestDynConfBuilder_getIPPort_docker`;
pkg/config/label/label_test.go `TestDecodeConfiguration` (one case per item); pkg/provider/docker/shared_test.go
`Test_getPort_docker`. Not read: `getIPAddress_*` (network choice, IPv6-only networks, the node IP of host
mode), pswarm_test.go (the Swarm API client against a mock), `TestEncodeConfiguration` (Traefik's encoder,
which swarmgate does not have).

Only facts are carried over (names, values, types); no Go code is copied. Run from the repository root:

    python3 scripts/traefik-tables.py                       # v3.7.9 → tests/fixtures/traefik-tables/
    python3 scripts/traefik-tables.py --tag v2.11.53 --out tests/fixtures/traefik-tables/v2.11.53 \
        --schema tests/fixtures/traefik-tables/v2.11.53/schema.json
"""

import argparse
import json
import os
import re
import subprocess
import sys

# ---------------------------------------------------------------------------------------------- tokenizer

TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.\.|:=|&&|\|\||==|!=|<=|>=|<-|[-+*/%&|^<>=!.,;:(){}\[\]])
    """,
    re.S | re.X,
)


def tokenize(src):
    out = []
    pos = 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            raise SyntaxError(f"cannot tokenize at {src[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            # Go's automatic semicolons: a line ending after an operand ends the statement.
            if "\n" in m.group() and out and (out[-1][0] in ("ident", "str", "num", "char")
                                              or out[-1][1] in (")", "]", "}")):
                out.append(("op", ";"))
            continue
        text = m.group()
        if kind == "raw":
            out.append(("str", text[1:-1]))
        elif kind == "str":
            out.append(("str", json.loads(text, strict=False)))
        else:
            out.append((kind, text))
    out.append(("eof", ""))
    return out


# ------------------------------------------------------------------------------------------------- parser
# Expressions are parsed into small tuples:
#   ("lit", type_or_None, [(key_or_None, value), ...])   composite literal
#   ("str", s) ("num", n) ("ident", "a.b") ("call", fn, [args]) ("unary", op, x) ("binary", op, a, b)


KEYWORDS = {"if", "for", "switch", "select", "func", "return", "go", "defer", "else", "case", "range",
            "true", "false", "nil"}


class Parser:
    def __init__(self, toks, i=0):
        self.t = toks
        self.i = i

    def peek(self, k=0):
        return self.t[self.i + k]

    def next(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, text):
        tok = self.next()
        if tok[1] != text:
            raise SyntaxError(f"expected {text!r}, got {tok!r} near {self.context()}")
        return tok

    def context(self):
        return " ".join(x[1] for x in self.t[max(0, self.i - 8):self.i + 8])

    # A type: `*T`, `[]T`, `map[K]V`, `pkg.Name`, `Name`, `struct {...}`.
    def parse_type(self):
        tok = self.peek()
        if tok[1] == "*":
            self.next()
            return "*" + self.parse_type()
        if tok[1] == "[":
            self.next()
            self.expect("]")
            return "[]" + self.parse_type()
        if tok[1] == "map":
            self.next()
            self.expect("[")
            k = self.parse_type()
            self.expect("]")
            return f"map[{k}]" + self.parse_type()
        if tok[1] == "struct":
            self.next()
            return ("struct", self.parse_struct_body())
        name = self.next()[1]
        while self.peek()[1] == "." and self.peek(1)[0] == "ident":
            self.next()
            name += "." + self.next()[1]
        return name

    def parse_struct_body(self):
        """`{ Name Type tag; ... }` → [(name, type, tag)]; embedded fields have name None."""
        self.expect("{")
        fields = []
        while self.peek()[1] != "}":
            names = [self.next()[1]]
            embedded = False
            if self.peek()[1] == ".":  # embedded pkg.Type
                self.next()
                names = [names[0] + "." + self.next()[1]]
                embedded = True
            while self.peek()[1] == ",":
                self.next()
                names.append(self.next()[1])
            if embedded or self.peek()[0] == "str" or self.peek()[1] in (";", "}"):
                typ = names[0]
                names = [None]
            else:
                typ = self.parse_type()
            tag = ""
            if self.peek()[0] == "str":
                tag = self.next()[1]
            for n in names:
                fields.append((n, typ, tag))
            if self.peek()[1] == ";":
                self.next()
        self.expect("}")
        return fields

    def parse_expr(self):
        left = self.parse_unary()
        while self.peek()[1] in ("*", "/", "+", "-", "|"):
            op = self.next()[1]
            right = self.parse_unary()
            left = ("binary", op, left, right)
        return left

    def parse_unary(self):
        tok = self.peek()
        if tok[1] in ("&", "-", "!"):
            self.next()
            return ("unary", tok[1], self.parse_unary())
        return self.parse_primary()

    def parse_primary(self):
        tok = self.peek()
        if tok[1] == "{":
            return ("lit", None, self.parse_elements())
        if tok[1] in ("[", "map", "*") or (tok[1] == "struct"):
            typ = self.parse_type()
            return ("lit", typ, self.parse_elements())
        if tok[0] == "str":
            self.next()
            x = ("str", tok[1])
        elif tok[0] == "num":
            self.next()
            x = ("num", float(tok[1]) if "." in tok[1] or "e" in tok[1].lower() else int(tok[1]))
        elif tok[1] == "(":
            self.next()
            x = self.parse_expr()
            self.expect(")")
        elif tok == ("ident", "func"):
            x = self.parse_pointer_helper()
        elif tok[0] == "ident":
            self.next()
            name = tok[1]
            while self.peek()[1] == "." and self.peek(1)[0] == "ident":
                self.next()
                name += "." + self.next()[1]
            x = ("ident", name)
        else:
            raise SyntaxError(f"unexpected {tok!r} near {self.context()}")
        while True:
            if self.peek()[1] == "(":
                self.next()
                args = []
                while self.peek()[1] != ")":
                    if self.peek()[1] in ("[", "map", "*") and x == ("ident", "new"):
                        args.append(("type", self.parse_type()))
                    else:
                        args.append(self.parse_expr())
                    if self.peek()[1] == ",":
                        self.next()
                self.expect(")")
                x = ("call", x, args)
            elif self.peek()[1] == "{" and x[0] == "ident" and x[1] not in KEYWORDS:
                x = ("lit", x[1], self.parse_elements())
            else:
                return x

    def parse_pointer_helper(self):
        """`func(v T) *T { return &v }`, called at once: the value itself (the one function literal the
        tables use, to take the address of a constant)."""
        start = self.i
        self.expect("func")
        self.expect("(")
        param = self.next()[1]
        self.parse_type()
        self.expect(")")
        self.parse_type()
        body = []
        self.expect("{")
        while self.peek()[1] != "}":
            body.append(self.next()[1])
        self.expect("}")
        if [b for b in body if b != ";"] != ["return", "&", param]:
            self.i = start
            raise SyntaxError(f"unsupported function literal near {self.context()}")
        return ("ident", "$identity")

    def parse_elements(self):
        self.expect("{")
        elems = []
        while self.peek()[1] != "}":
            first = self.parse_expr()
            if self.peek()[1] == ":":
                self.next()
                elems.append((first, self.parse_expr()))
            else:
                elems.append((None, first))
            if self.peek()[1] == ",":
                self.next()
        self.expect("}")
        return elems


# -------------------------------------------------------------------------------------------- struct model


def parse_tag(tag, go_name):
    """JSON name, omitempty, and whether the field is left out of JSON."""
    m = re.search(r'json:"([^"]*)"', tag)
    if not m:
        return go_name, False, False
    parts = m.group(1).split(",")
    if parts[0] == "-":
        return None, False, True
    return (parts[0] or go_name), "omitempty" in parts[1:], False


class Model:
    """Every struct type of the packages read: `pkg.Name` → [(go name, json name, omitempty, type)]."""

    def __init__(self):
        self.structs = {}
        self.named = {}  # `pkg.Name` → underlying non-struct type (e.g. `types.FileOrContent` → string)

    def read_package(self, git, pkg_dir, pkg):
        files = git("ls-tree", "--name-only", TAG_REF[0], pkg_dir + "/").split()
        for f in files:
            if not f.endswith(".go") or f.endswith("_test.go") or "zz_generated" in f:
                continue
            self.read_source(git("show", f"{TAG_REF[0]}:{f}"), pkg)

    def read_source(self, src, pkg):
        toks = tokenize(src)
        i = 0
        while i < len(toks):
            if toks[i] == ("ident", "type") and toks[i + 1][0] == "ident":
                name = toks[i + 1][1]
                p = Parser(toks, i + 2)
                if toks[i + 2][1] == "(":
                    i += 1
                    continue
                if toks[i + 2][1] == "=":
                    p.next()
                try:
                    typ = p.parse_type()
                except (SyntaxError, IndexError):
                    i += 1
                    continue
                if isinstance(typ, tuple):
                    self.structs[f"{pkg}.{name}"] = [
                        self.field(pkg, n, t, tag) for (n, t, tag) in typ[1]
                    ]
                else:
                    self.named[f"{pkg}.{name}"] = self.qualify(pkg, typ)
                i = p.i
            else:
                i += 1

    def field(self, pkg, name, typ, tag):
        typ = self.qualify(pkg, typ)
        if name is None:  # embedded: its fields are flattened into the JSON object
            return (None, None, False, typ)
        jname, omit, skip = parse_tag(tag, name)
        return (name, None if skip else jname, omit, typ)

    BUILTIN = {"string", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16",
               "uint32", "uint64", "float32", "float64", "any", "interface", "byte", "rune", "error"}

    def qualify(self, pkg, typ):
        if isinstance(typ, tuple):
            return "struct"
        m = re.match(r"^(\*|\[\]|map\[[^\]]*\])(.*)$", typ)
        if m:
            return m.group(1) + self.qualify(pkg, m.group(2))
        if typ in self.BUILTIN:
            return typ
        if "." in typ:
            alias, name = typ.split(".", 1)
            return f"{self.ALIASES.get(alias, alias)}.{name}"
        return f"{pkg}.{typ}"

    ALIASES = {"traefiktls": "tls"}

    def fields(self, typ):
        """All JSON-visible fields of struct `typ`, embedded ones flattened: go name → (json, omit, type)."""
        out = {}
        for (go, jname, omit, ftyp) in self.structs.get(typ, []):
            if go is None:
                out.update(self.fields(ftyp.lstrip("*")))
            else:
                out[go] = (jname, omit, ftyp)
        return out


# ------------------------------------------------------------------------------------------------ values

UNITS = {"time.Nanosecond": 1, "time.Microsecond": 10**3, "time.Millisecond": 10**6, "time.Second": 10**9,
         "time.Minute": 60 * 10**9, "time.Hour": 3600 * 10**9}


def go_duration(ns):
    """Go's `time.Duration.String()`."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                text = fmt_frac(ns, size) + unit
                break
    else:
        h, rest = divmod(ns, 3600 * 10**9)
        m, rest = divmod(rest, 60 * 10**9)
        s = fmt_frac(rest, 10**9) + "s"
        text = (f"{h}h{m}m" if h else (f"{m}m" if m else "")) + s
    return ("-" if neg else "") + text


def fmt_frac(v, size):
    whole, frac = divmod(v, size)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


class Unsupported(Exception):
    """An expression the converter does not evaluate (the case is then skipped, and said so)."""


class Evaluator:
    """Evaluates parsed literals to JSON values, guided by the Go type each literal has."""

    def __init__(self, model, consts):
        self.model = model
        self.consts = consts

    def number(self, e):
        kind = e[0]
        if kind == "num":
            return e[1]
        if kind == "ident":
            if e[1] in UNITS:
                return UNITS[e[1]]
            if e[1] in self.consts:
                return self.consts[e[1]]
            raise Unsupported(f"unknown constant {e[1]}")
        if kind == "binary":
            a, b = self.number(e[2]), self.number(e[3])
            return {"*": a * b, "/": a // b if isinstance(a, int) else a / b, "+": a + b, "-": a - b,
                    "|": a | b}[e[1]]
        if kind == "unary" and e[1] == "-":
            return -self.number(e[2])
        if kind == "call" and e[1][0] == "ident" and e[1][1] in ("time.Duration", "ptypes.Duration", "int64",
                                                                  "int", "float64", "uint64"):
            return self.number(e[2][0])
        raise Unsupported(f"not a number: {e}")

    def value(self, e, typ):
        """JSON value of expression `e` whose Go type is `typ` (None when unknown)."""
        typ = typ or ""
        if isinstance(typ, str) and typ.startswith("*"):
            typ = typ[1:]
        kind = e[0]
        if kind == "unary" and e[1] == "&":
            return self.value(e[2], typ)
        if kind == "call":
            fn = e[1][1] if e[1][0] == "ident" else None
            if fn == "$identity":
                return self.value(e[2][0], typ)
            if fn == "new":
                arg = e[2][0]
                if arg[0] == "type":
                    return self.zero(arg[1])
                return self.value(arg, typ)
            if fn in ("ptypes.Duration", "time.Duration"):
                return go_duration(self.number(e[2][0]))
            if fn in ("networktypes.MustParsePort", "netip.MustParseAddr", "types.FileOrContent", "string"):
                return self.value(e[2][0], "string")
            if fn in ("int", "int64", "uint64", "float64", "uint16", "int32"):
                return self.number(e[2][0])
            raise Unsupported(f"call to {fn}")
        if kind == "lit":
            ltyp = e[1] if e[1] is not None else typ
            if isinstance(ltyp, str) and ltyp.startswith("*"):
                ltyp = ltyp[1:]
            return self.literal(ltyp, e[2])
        if kind == "str":
            return e[1]
        if typ and self.is_duration(typ) and kind == "ident" and isinstance(self.consts.get(e[1]), str):
            return self.consts[e[1]]
        if typ and self.is_duration(typ) and kind in ("num", "binary", "ident"):
            return go_duration(self.number(e))
        if kind in ("num", "binary"):
            return self.number(e)
        if kind == "ident":
            name = e[1]
            if name in ("true", "false"):
                return name == "true"
            if name == "nil":
                return None
            if name in self.consts:
                return self.consts[name]
            raise Unsupported(f"unknown identifier {name}")
        if kind == "unary" and e[1] == "-":
            return -self.number(e[2])
        raise Unsupported(f"expression {e}")

    def is_duration(self, typ):
        return typ.lstrip("*") in ("ptypes.Duration", "time.Duration")

    def zero(self, typ):
        typ = typ.lstrip("*")
        if typ == "bool":
            return False
        if typ == "string":
            return ""
        if typ in Model.BUILTIN:
            return 0
        return {}

    def literal(self, typ, elems):
        if "." not in typ and not typ.startswith(("[]", "map[")) and f"docker.{typ}" in self.model.structs:
            typ = f"docker.{typ}"  # the Docker provider's own (unexported) test input types
        while typ in self.model.named and isinstance(self.model.named[typ], str):
            typ = self.model.named[typ].lstrip("*")
        if typ.startswith("[]"):
            return [self.value(v, typ[2:]) for (_, v) in elems]
        m = re.match(r"^map\[([^\]]*)\](.*)$", typ)
        if m:
            out = {}
            for (k, v) in elems:
                key = self.value(k, m.group(1))
                out[str(key)] = self.value(v, m.group(2))
            return out
        fields = self.model.fields(typ) if typ in self.model.structs else None
        out = {}
        for (k, v) in elems:
            if k is None or k[0] != "ident":
                raise Unsupported(f"positional literal of {typ}")
            if fields is None:  # a type we have no definition of: Go names, as written
                out[k[1]] = self.value(v, None)
                continue
            if k[1] not in fields:
                raise Unsupported(f"{typ} has no field {k[1]}")
            jname, omit, ftyp = fields[k[1]]
            if jname is None:
                continue
            val = self.value(v, ftyp)
            if omit and not ftyp.startswith("*") and val in (False, 0, "", None, [], {}) and val is not True:
                continue
            out[jname] = val
        if fields is not None and not typ.startswith("docker."):  # Go writes non-omitempty fields even unset
            for go, (jname, omit, ftyp) in fields.items():
                if jname and not omit and jname not in out:
                    out[jname] = None if ftyp.startswith(("*", "[]", "map[")) else self.zero(ftyp)
        return out


# --------------------------------------------------------------------------------------------- the tables

TAG_REF = [None]


def find_func(toks, name):
    for i in range(len(toks) - 2):
        if toks[i] == ("ident", "func") and toks[i + 1] == ("ident", name):
            return i
    raise KeyError(name)


def func_end(toks, start):
    depth = 0
    i = start
    while toks[i][1] != "{":
        i += 1
    while True:
        if toks[i][1] == "{":
            depth += 1
        elif toks[i][1] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1


def find_assign(toks, start, end, name):
    for i in range(start, end):
        if toks[i] == ("ident", name) and toks[i + 1][1] == ":=":
            return i + 2
    raise KeyError(name)


def test_cases(toks, func):
    """The `testCases := []struct{...}{...}` of `func`: field types and the parsed elements."""
    start = find_func(toks, func)
    end = func_end(toks, start)
    p = Parser(toks, find_assign(toks, start, end, "testCases"))
    p.expect("[")
    p.expect("]")
    p.expect("struct")
    fields = {n: t for (n, t, _) in p.parse_struct_body()}
    elems = p.parse_elements()
    return fields, elems, p.i, end


def settings_literal(toks, start, end):
    """The provider settings of the test body (`Shared{...}` or `Provider{Shared: Shared{...}}`)."""
    for i in range(start, end):
        if toks[i] == ("ident", "Shared") and toks[i + 1][1] == "{":
            p = Parser(toks, i + 1)
            return p.parse_elements()
    for i in range(start, end):  # Traefik v2: the settings are the `Provider` itself
        if toks[i] == ("ident", "Provider") and toks[i + 1][1] == "{":
            p = Parser(toks, i + 1)
            return p.parse_elements()
    raise KeyError("Shared literal")


def container(ev, c):
    """A `dockerData` literal as the test harness reads it (Go names kept; these are inputs)."""
    return ev.literal("docker.dockerData", c)


def docker_cases(git, ev, model, src, func, fname):
    toks = tokenize(src)
    fields, elems, after, end = test_cases(toks, func)
    shared = settings_literal(toks, after, end)
    cases = []
    skipped = []
    for (_, elem) in elems:
        raw = {k[1]: v for (k, v) in elem[2]}
        desc = ev.value(raw["desc"], "string")
        try:
            settings = {}
            for (k, v) in shared:
                if v[0] == "ident" and v[1].startswith("test."):
                    field = v[1][5:]
                    settings[k[1]] = ev.value(raw[field], fields[field]) if field in raw else ev.zero(
                        fields[field] if isinstance(fields[field], str) else "struct")
                elif v[0] == "ident" and v[1] == "defaultRuleTpl":
                    continue
                else:
                    settings[k[1]] = ev.value(v, None)
            # Fields set on the provider outside the literal (`p.Constraints = test.constraints`).
            for extra in ("constraints",):
                if extra in fields and extra not in {k.lower() for k in settings}:
                    settings["Constraints"] = ev.value(raw[extra], "string") if extra in raw else ""
            case = {
                "desc": desc,
                "settings": settings,
                "containers": [container(ev, c[2]) for (_, c) in raw["containers"][2]],
                "expected": ev.value(raw["expected"], "dynamic.Configuration"),
            }
        except Unsupported as e:
            skipped.append({"desc": desc, "reason": str(e)})
            continue
        cases.append(case)
    return {"file": fname, "function": func, "cases": cases, "not_converted": skipped}


def label_cases(ev, src, fname):
    """`TestDecodeConfiguration`: one label map, one expected configuration; split into one case per item
    (router, service, middleware, TLS store) so a miss costs one case, not the whole table."""
    toks = tokenize(src)
    start = find_func(toks, "TestDecodeConfiguration")
    end = func_end(toks, start)
    labels = ev.value(Parser(toks, find_assign(toks, start, end, "labels")).parse_expr(), "map[string]string")
    expected = ev.value(Parser(toks, find_assign(toks, start, end, "expected")).parse_expr(),
                        "dynamic.Configuration")
    cases = []
    for proto in ("http", "tcp", "udp"):
        for section, items in sorted((expected.get(proto) or {}).items()):
            for name, item in sorted((items or {}).items()):
                prefix = f"traefik.{proto}.{section}.{name}.".lower()
                mine = {k: v for (k, v) in labels.items() if k.lower().startswith(prefix)}
                cases.append({
                    "desc": f"{proto}.{section}.{name}",
                    "labels": mine,
                    "expected": {proto: {section: {name: item}}},
                })
    for store, item in sorted(((expected.get("tls") or {}).get("stores") or {}).items()):
        prefix = f"traefik.tls.stores.{store}.".lower()
        cases.append({
            "desc": f"tls.stores.{store}",
            "labels": {k: v for (k, v) in labels.items() if k.lower().startswith(prefix)},
            "expected": {"tls": {"stores": {store: item}}},
        })
    covered = set()
    for c in cases:
        covered.update(c["labels"])
    uncovered = sorted(set(labels) - covered)
    return {"file": fname, "function": "TestDecodeConfiguration", "cases": cases,
            "not_converted": [{"desc": k, "reason": "label of no expected item"} for k in uncovered]}


def port_cases(ev, src, fname):
    """`Test_getPort_docker`: which port a container is reached on, from its exposed ports and the port label."""
    toks = tokenize(src)
    fields, elems, _, _ = test_cases(toks, "Test_getPort_docker")
    cases, skipped = [], []
    for (_, elem) in elems:
        raw = {k[1]: v for (k, v) in elem[2]}
        desc = ev.value(raw["desc"], "string")
        try:
            ports = []
            for call in walk_calls(raw["container"], "ports"):
                ports.extend(ev.value(("lit", "map[string]string", call[2][0][2]), None).keys())
            if list(walk_calls(raw["container"], "networkMode")):
                raise Unsupported("network mode")
            cases.append({
                "desc": desc,
                "exposedPorts": ports,
                "serverPort": ev.value(raw["serverPort"], "string") if "serverPort" in raw else "",
                "expected": ev.value(raw["expected"], "string"),
            })
        except Unsupported as e:
            skipped.append({"desc": desc, "reason": str(e)})
    return {"file": fname, "function": "Test_getPort_docker", "cases": cases, "not_converted": skipped}


def container_helpers(ev, e):
    """Traefik's test helpers that build a container (`containerJSON(ports(…), withNetwork("n", ipv4(…)))`)
    → the container's fields they set, as Docker's inspect answer names them."""
    if e[0] != "call" or e[1][0] != "ident":
        raise Unsupported(f"container expression {e}")
    fn, args = e[1][1], e[2]
    merged = {}
    if fn == "containerJSON":
        for a in args:
            for k, v in container_helpers(ev, a).items():
                if isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k].update(v)
                else:
                    merged[k] = v
        return merged
    if fn == "ports":
        return {"Ports": ev.value(args[0], "map[string][]networktypes.PortBinding")}
    if fn == "withNetwork":
        settings = {}
        for a in args[1:]:
            settings.update(container_helpers(ev, a))
        return {"Networks": {ev.value(args[0], "string"): settings}}
    if fn == "ipv4":
        return {"IPAddress": ev.value(args[0], "string")}
    if fn == "ipv6":
        return {"GlobalIPv6Address": ev.value(args[0], "string")}
    if fn == "networkMode":
        return {"NetworkMode": ev.value(args[0], "string")}
    if fn == "name":
        return {"Name": ev.value(args[0], "string")}
    raise Unsupported(f"helper {fn}")


def ip_port_cases(ev, src, fname, func):
    """`getIPPort`: which address and port a container's server gets (bindings, `useBindPortIP`, the port
    label), with the provider settings of the test body."""
    toks = tokenize(src)
    fields, elems, after, end = test_cases(toks, func)
    shared = settings_literal(toks, after, end)
    settings = {k[1]: ev.value(v, None) for (k, v) in shared}
    cases, skipped = [], []
    for (_, elem) in elems:
        raw = {k[1]: v for (k, v) in elem[2]}
        desc = ev.value(raw["desc"], "string")
        try:
            exp = {k[1]: ev.value(v, None) for (k, v) in raw["expected"][2]}
            cases.append({
                "desc": desc,
                "settings": settings,
                "container": container_helpers(ev, raw["container"]),
                "serverPort": ev.value(raw["serverPort"], "string") if "serverPort" in raw else "",
                "expected": {"ip": exp.get("ip", ""), "port": exp.get("port", ""),
                             "error": exp.get("error", False)},
            })
        except Unsupported as e:
            skipped.append({"desc": desc, "reason": str(e)})
    return {"file": fname, "function": func, "cases": cases, "not_converted": skipped}


def walk_calls(e, name):
    if isinstance(e, tuple):
        if e[0] == "call" and e[1] == ("ident", name):
            yield e
        for x in e[1:]:
            yield from walk_calls(x, name)
    elif isinstance(e, list):
        for x in e:
            yield from walk_calls(x, name)


# ------------------------------------------------------------------------------------------------- schema


def kind_of(model, typ):
    typ = typ.lstrip("*")
    typ = model.named.get(typ, typ)
    if isinstance(typ, str):
        typ = typ.lstrip("*")
    if typ in ("ptypes.Duration", "time.Duration"):
        return "duration"
    if typ in ("string", "types.FileOrContent") or typ.endswith("FileOrContent"):
        return "string"
    if typ == "bool":
        return "bool"
    if typ in ("int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64"):
        return "int"
    if typ in ("float32", "float64"):
        return "float"
    if typ.startswith("[]"):
        return {"list": kind_of(model, typ[2:])}
    m = re.match(r"^map\[([^\]]*)\](.*)$", typ)
    if m:
        return {"map": kind_of(model, m.group(2))}
    if typ in model.structs:
        return {"struct": typ}
    if typ in model.named:
        return kind_of(model, model.named[typ])
    return "any"


def package_consts(ev, src, pkg):
    """`const` declarations of a Go file whose value the evaluator can compute, as `pkg.Name` (and `Name`)."""
    for block in re.findall(r"^const \((.*?)^\)", src, re.S | re.M):
        for line in block.split("\n"):
            m = re.match(r"^\s*(\w+)(?:\s+[\w.]+)?\s*=\s*(.+?)\s*(?://.*)?$", line)
            if not m:
                continue
            try:
                expr = Parser(tokenize(m.group(2))).parse_expr()
                val = ev.value(expr, None)
            except (SyntaxError, Unsupported, KeyError, IndexError):
                continue
            ev.consts[f"{pkg}.{m.group(1)}"] = val
            ev.consts.setdefault(m.group(1), val)


def struct_defaults(ev, model, src, pkg):
    """`func (x *T) SetDefaults()` bodies → `pkg.T` → {json field: default}. A nested section created empty
    (`x.A = &A{}` then `x.A.SetDefaults()`) is recorded as `{}`: its own defaults apply to it in turn."""
    out = {}
    for recv, typ, body in re.findall(r"func \((\w+) \*(\w+)\) SetDefaults\(\) \{\n(.*?)^\}", src,
                                      re.S | re.M):
        fields = model.fields(f"{pkg}.{typ}")
        local = {}
        vals = {}
        for line in body.split("\n"):
            line = line.strip()
            m = re.match(r"^(?:var\s+)?(\w+)(?:\s+[\w.]+)?\s*:?=\s*(.+)$", line)
            if m and not line.startswith(f"{recv}."):
                local[m.group(1)] = m.group(2)
                continue
            m = re.match(rf"^{recv}\.(\w+)\s*=\s*(.+)$", line)
            if not m or m.group(1) not in fields:
                continue
            jname, _, ftyp = fields[m.group(1)]
            if jname is None:  # `json:"-"`: never written
                continue
            rhs = m.group(2)
            if rhs.startswith("&") and rhs[1:] in local:
                rhs = local[rhs[1:]]
            try:
                vals[jname] = ev.value(Parser(tokenize(rhs)).parse_expr(), ftyp)
            except (SyntaxError, Unsupported, KeyError, IndexError) as e:
                print(f"SetDefaults of {typ}: {line!r} not read ({e})", file=sys.stderr)
        if vals:
            out[f"{pkg}.{typ}"] = vals
    return out


def schema(model, root):
    out = {}
    todo = [root]
    while todo:
        typ = todo.pop()
        if typ in out:
            continue
        fields = {}
        omits = {}
        for go, (jname, omit, ftyp) in sorted(model.fields(typ).items()):
            if jname is None:
                continue
            k = kind_of(model, ftyp)
            fields[jname] = k
            # How Go's `omitempty` treats the field: a pointer is left out only when nil; anything else
            # when it is its zero value (an empty struct counts as one here: it says nothing).
            if omit:
                omits[jname] = "nil" if ftyp.startswith("*") else "zero"
            stack = [k]
            while stack:
                x = stack.pop()
                if isinstance(x, dict):
                    if "struct" in x:
                        todo.append(x["struct"])
                    else:
                        stack.extend(x.values())
        out[typ] = {"fields": fields, "omit": omits}
    return out


# --------------------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mirror", default="/work/.mirror/traefik+traefik/repo")
    ap.add_argument("--tag", default="v3.7.9")
    ap.add_argument("--out", default="tests/fixtures/traefik-tables")
    ap.add_argument("--schema", default="src/dynamic/traefik_schema.json")
    args = ap.parse_args()
    TAG_REF[0] = args.tag

    def git(*a):
        return subprocess.run(["git", "-C", args.mirror, *a], check=True, capture_output=True,
                              text=True).stdout

    commit = git("rev-parse", f"{args.tag}^{{commit}}").strip()
    model = Model()
    # The Docker API types the test inputs use, by their shape (the moby module is not in the mirror).
    model.named.update({
        "networktypes.PortMap": "map[string][]networktypes.PortBinding",
        "containertypes.HealthStatus": "string",
        "containertypes.ContainerState": "string",
        "containertypes.NetworkMode": "string",
    })
    for pkg_dir, pkg in (("pkg/config/dynamic", "dynamic"), ("pkg/tls", "tls"), ("pkg/types", "types"),
                         ("pkg/provider/docker", "docker")):
        model.read_package(git, pkg_dir, pkg)
    consts = {}
    for f in git("ls-tree", "--name-only", args.tag, "pkg/provider/docker/").split():
        if f.endswith(".go") and not f.endswith("_test.go"):
            m = re.search(r'DefaultTemplateRule = "((?:[^"\\]|\\.)*)"', git("show", f"{args.tag}:{f}"))
            if m:
                consts["DefaultTemplateRule"] = json.loads(f'"{m.group(1)}"')
    # Docker API constants the inputs use (container states and health), by their value in the Docker API.
    for alias in ("containertypes", "dockercontainertypes", "dockertypes"):
        consts.update({f"{alias}.Unhealthy": "unhealthy", f"{alias}.Healthy": "healthy",
                       f"{alias}.Starting": "starting", f"{alias}.NoHealthcheck": "none"})
    consts.update({"containertypes.Unhealthy": "unhealthy", "containertypes.Healthy": "healthy",
                   "containertypes.Starting": "starting", "containertypes.NoHealthcheck": "none",
                   "containertypes.StateRunning": "running", "containertypes.StateExited": "exited",
                   "containertypes.StateCreated": "created", "containertypes.StatePaused": "paused"})
    http_config = git("show", f"{args.tag}:pkg/config/dynamic/http_config.go")
    if "BalancerStrategyWRR" in http_config or True:
        for name, value in re.findall(r'(BalancerStrategy\w+)\s+BalancerStrategy\s*=\s*"([^"]*)"',
                                      http_config):
            consts["dynamic." + name] = value
    ev = Evaluator(model, consts)
    consts["http.StatusServiceUnavailable"] = 503
    consts["otypes.MinimalVerbosity"] = "minimal"
    dyn_files = [f for f in git("ls-tree", "--name-only", args.tag, "pkg/config/dynamic/").split()
                 if f.endswith(".go") and not f.endswith("_test.go") and "zz_generated" not in f]
    dyn_srcs = [git("show", f"{args.tag}:{f}") for f in dyn_files]
    for src in dyn_srcs:
        package_consts(ev, src, "dynamic")
    defaults = {}
    for src in dyn_srcs:
        defaults.update(struct_defaults(ev, model, src, "dynamic"))
    os.makedirs(args.out, exist_ok=True)
    origin = {"traefik": {"tag": args.tag, "commit": commit,
                          "repository": "https://github.com/traefik/traefik"}}
    tables = []
    cfg_path = "pkg/provider/docker/config_test.go"
    cfg_src = git("show", f"{args.tag}:{cfg_path}")
    # The test functions' names changed between Traefik v2 and v3; the tables kept their shape.
    v2 = args.tag.startswith("v2.")
    for func, out in ((("TestDefaultRule" if v2 else "TestDynConfBuilder_DefaultRule"), "docker-default-rule.json"),
                      (("Test_buildConfiguration" if v2 else "TestDynConfBuilder_build"), "docker-build.json")):
        tables.append((out, docker_cases(git, ev, model, cfg_src, func, cfg_path)))
    if not v2:  # Traefik v3's address and port selection (v2 builds its containers another way)
        tables.append(("docker-ip-port.json",
                       ip_port_cases(ev, cfg_src, cfg_path, "TestDynConfBuilder_getIPPort_docker")))
    if not v2:  # Traefik v3.6's `allowNonRunning`
        tables.append(("docker-build-non-running.json",
                       docker_cases(git, ev, model, cfg_src, "TestDynConfBuilder_build_allowNonRunning",
                                    cfg_path)))
    lbl_path = "pkg/config/label/label_test.go"
    tables.append(("label-decode.json", label_cases(ev, git("show", f"{args.tag}:{lbl_path}"), lbl_path)))
    if not v2:  # v2's port tests build containers with helper functions, not literals
        sh_path = "pkg/provider/docker/shared_test.go"
        tables.append(("docker-port.json", port_cases(ev, git("show", f"{args.tag}:{sh_path}"), sh_path)))
    for out, table in tables:
        doc = {**origin, "source": table["file"], "function": table["function"],
               "generatedBy": "scripts/traefik-tables.py", "cases": table["cases"],
               "notConverted": table["not_converted"]}
        with open(os.path.join(args.out, out), "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False, sort_keys=False)
            f.write("\n")
        print(f"{out}: {len(table['cases'])} cases, {len(table['not_converted'])} not converted",
              file=sys.stderr)
    sch = {**origin, "generatedBy": "scripts/traefik-tables.py",
           "types": schema(model, "dynamic.Configuration"), "defaults": defaults}
    with open(args.schema, "w") as f:
        json.dump(sch, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
