#!/usr/bin/python3
"""wire_names.py - docs/protocol.md's tables of error codes (8.3) and event types (8.4) are
exactly what margo-agent can put on the wire.

Reads the agent's C sources (agent/src/*.c, whatever file a function lives in) and collects:
  - error codes: the code argument of every mgo_rt__set_error() call, of every helper that
    forwards its `code` parameter to it (e.g. runtime.c's fail_all), and every string written
    into an error's `code` field with snprintf();
  - event types with their severities: the type and severity arguments of every call to the
    function that encodes events (the one calling mgo_event_encode).
A code or type that is not a fixed string (built at run time, e.g. "EXIT_CODE_%d", or passed
in a variable this script cannot follow) fails the test with its file and line: the tables
could not list it, and monitors could not filter on it.

Then it fails for every code or type the code can emit that the table lacks, every row of the
table the code never emits (rows marked "Reserved by Margo" excepted), and every event whose
severities differ from the table's severity column.

  wire_names.py SOURCE_DIR
"""
import glob
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../..")
problems = []


def fail(msg):
    problems.append(msg)
    print("FAIL:", msg)


def strip_comments(text):
    # keep line numbers: replace comments by the same number of newlines
    def blank(m):
        return "\n" * m.group(0).count("\n")
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def call_args(text, start):
    """Arguments of the call whose '(' is at text[start]; (args, end). Splits on top-level
    commas, aware of nested parentheses and string literals."""
    depth, i, cur, args = 0, start, [], []
    in_str = False
    while i < len(text):
        c = text[i]
        if in_str:
            cur.append(c)
            if c == "\\":
                cur.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            cur.append(c)
        elif c == "(":
            depth += 1
            if depth > 1:
                cur.append(c)
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args, i
            cur.append(c)
        elif c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    return args, i


def literals(expr):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', expr)


def enclosing_function(text, pos):
    """Name of the C function definition that contains pos (the last definition header
    before it)."""
    best = None
    for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b(\w+)\s*\([^;{]*\)\s*\{", text, re.M):
        if m.start() > pos:
            break
        best = m.group(1)
    return best


sources = {}
for path in sorted(glob.glob(os.path.join(src, "agent/src/*.c"))):
    with open(path, encoding="utf-8") as f:
        sources[os.path.relpath(path, src)] = strip_comments(f.read())
if not sources:
    fail(f"no C sources under {src}/agent/src")


def where(name, text, pos):
    return f"{name}:{text.count(chr(10), 0, pos) + 1}"


def collect(func, arg_index, what, seen_helpers=()):
    """{value: [locations]} of the literal argument arg_index of every call to func. An
    argument that is an identifier naming a parameter of the enclosing function makes that
    function a forwarding helper, whose own calls are collected in turn."""
    found = {}
    for name, text in sources.items():
        for m in re.finditer(r"\b" + re.escape(func) + r"\s*\(", text):
            # skip the definition and declarations
            line_start = text.rfind("\n", 0, m.start()) + 1
            prefix = text[line_start:m.start()]
            if re.search(r"\b(void|mgo_err|static|bool|int)\b", prefix):
                continue
            args, _ = call_args(text, m.end() - 1)
            loc = where(name, text, m.start())
            if len(args) <= arg_index:
                fail(f"{loc}: {func}() with {len(args)} arguments; cannot read its {what}")
                continue
            expr = args[arg_index]
            lits = literals(expr)
            rest = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
            ident = re.fullmatch(r"[A-Za-z_]\w*", expr)
            if ident and not lits:
                helper = enclosing_function(text, m.start())
                if helper and helper not in seen_helpers and helper != func:
                    # the helper's parameter position of this identifier
                    hdr = re.search(r"\b" + re.escape(helper) + r"\s*\(([^)]*)\)\s*\{", text)
                    params = [p.strip() for p in hdr.group(1).split(",")] if hdr else []
                    pos = next((k for k, p in enumerate(params)
                                if re.search(r"\b" + re.escape(expr) + r"$", p)), None)
                    if pos is not None:
                        for v, locs in collect(helper, pos, what, seen_helpers + (func,)).items():
                            found.setdefault(v, []).extend(locs)
                        continue
                fail(f"{loc}: {func}() gets its {what} from '{expr}', which this test cannot "
                     f"follow; pass a string literal (or teach tests/scripts/wire_names.py)")
                continue
            if not lits or not re.fullmatch(r"[\s?:()\w=!<>&|.\->]*", rest):
                fail(f"{loc}: {func}() {what} '{expr}' is not a fixed string")
                continue
            for v in lits:
                found.setdefault(v, []).append(loc)
    return found


# ---- error codes
codes = collect("mgo_rt__set_error", 1, "error code")
for name, text in sources.items():
    for m in re.finditer(r"snprintf\s*\(\s*([\w.>\-]*\bcode)\s*,", text):
        args, _ = call_args(text, text.index("(", m.start()))
        loc = where(name, text, m.start())
        if enclosing_function(text, m.start()) == "mgo_rt__set_error":
            continue  # the setter itself: its callers were collected above
        if len(args) != 3 or not literals(args[2]) or not re.fullmatch(r'"[^"%]*"', args[2]):
            fail(f"{loc}: an error code written with snprintf({', '.join(args[2:])}) is not a "
                 f"fixed string (put variable details in the message)")
            continue
        codes.setdefault(literals(args[2])[0], []).append(loc)
for c, locs in sorted(codes.items()):
    if "%" in c or not re.fullmatch(r"[A-Z0-9_]+", c):
        fail(f"error code '{c}' ({locs[0]}) is not a fixed UPPER_CASE word")

# ---- event types and severities: the function that calls mgo_event_encode is the publisher
publishers = set()
for name, text in sources.items():
    for m in re.finditer(r"\bmgo_event_encode\s*\(", text):
        publishers.add(enclosing_function(text, m.start()))
publishers.discard(None)
if len(publishers) != 1:
    fail(f"expected one event publisher (the function calling mgo_event_encode), found {sorted(publishers)}")
events = {}
for pub in publishers:
    types = collect(pub, 1, "event type")
    for name, text in sources.items():
        for m in re.finditer(r"\b" + re.escape(pub) + r"\s*\(", text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if re.search(r"\b(void|static)\b", text[line_start:m.start()]):
                continue
            args, _ = call_args(text, m.end() - 1)
            if len(args) < 3:
                continue
            t = literals(args[1])
            sev = literals(args[2])
            if len(t) != 1 or not sev:
                fail(f"{where(name, text, m.start())}: event type/severity not fixed strings")
                continue
            events.setdefault(t[0], set()).update(sev)
    for t in types:
        events.setdefault(t, set())
for t, sev in sorted(events.items()):
    for s in sev:
        if s not in ("info", "warning", "error"):
            fail(f"event {t}: severity '{s}' is not info|warning|error (§3.7)")
if len(codes) < 5 or len(events) < 3:
    fail(f"found only {len(codes)} error codes and {len(events)} event types in agent/src: "
         f"the patterns of this test no longer match the sources")


# ---- the docs tables
def table_rows(doc, heading_prefix):
    i = doc.find(heading_prefix)
    if i < 0:
        fail(f"docs/protocol.md: no section starting '{heading_prefix}'")
        return []
    ends = [k for k in (doc.find("\n### ", i + 1), doc.find("\n## ", i + 1)) if k > 0]
    rows = []
    for line in doc[i:min(ends) if ends else len(doc)].splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("code", "type"):
            continue
        rows.append(cells)
    return rows


with open(os.path.join(src, "docs/protocol.md"), encoding="utf-8") as f:
    doc = f.read()

doc_codes, reserved = set(), set()
for cells in table_rows(doc, "### 8.3 "):
    names = re.findall(r"`([^`]+)`", cells[0])
    doc_codes.update(names)
    if "Reserved by Margo" in " ".join(cells):
        reserved.update(names)
# the class column (cells[2]) against common/src/failure.c's table
with open(os.path.join(src, "common/src/failure.c"), encoding="utf-8") as f:
    code_class = {c: k.lower() for c, k in
                  re.findall(r'\{"([A-Z_]+)", MGO_FAILURE_([A-Z]+)\}', f.read())}
if not code_class:
    fail("common/src/failure.c: no {\"CODE\", MGO_FAILURE_X} rows found; the pattern no longer matches")
for cells in table_rows(doc, "### 8.3 "):
    for n in re.findall(r"`([^`]+)`", cells[0]):
        doc_class = cells[2] if len(cells) > 3 else ""
        if n in reserved:
            continue
        want = code_class.get(n)
        if want is None:
            fail(f"error code {n}: no class in common/src/failure.c")
        elif doc_class != want:
            fail(f"error code {n}: docs/protocol.md 8.3 says class '{doc_class}', "
                 f"common/src/failure.c says '{want}'")
for c in sorted(set(codes) - doc_codes):
    fail(f"error code {c} is sent ({', '.join(codes[c][:3])}) but missing from docs/protocol.md 8.3")
for c in sorted(doc_codes - set(codes) - reserved):
    fail(f"docs/protocol.md 8.3 lists error code {c}, which margo-agent never sends")

doc_events = {}
for cells in table_rows(doc, "### 8.4 "):
    names = re.findall(r"`([^`]+)`", cells[0])
    sev = set(re.findall(r"\b(info|warning|error)\b", cells[1] if len(cells) > 1 else ""))
    for n in names:
        doc_events[n] = sev
for t in sorted(set(events) - set(doc_events)):
    fail(f"event type {t} is sent but missing from docs/protocol.md 8.4")
for t in sorted(set(doc_events) - set(events)):
    fail(f"docs/protocol.md 8.4 lists event type {t}, which margo-agent never sends")
for t in sorted(set(events) & set(doc_events)):
    if events[t] != doc_events[t]:
        fail(f"event {t}: sent with severity {sorted(events[t])}, documented as "
             f"{sorted(doc_events[t])}")

print(f"codes sent: {' '.join(sorted(codes))}")
print("events sent: " + " ".join(t + "(" + "/".join(sorted(s)) + ")" for t, s in sorted(events.items())))
if problems:
    print(f"{len(problems)} problem(s)")
    sys.exit(1)
print("ok: docs/protocol.md 8.3 and 8.4 list exactly what margo-agent sends")
