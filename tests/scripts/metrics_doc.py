#!/usr/bin/python3
"""metrics_doc.py - the metrics table of docs/operations.md ("Metrics", the subsection of one
program) lists exactly the metric families a real scrape of that program exposes, with their
types and label names.

  metrics_doc.py OPERATIONS.MD manager|agent SCRAPE.TXT

The table rows read | `name` | type | `label`, `label` | ... (labels "-" for none; a
histogram's le is implied). Every family of the scrape must be documented with its type and
labels, and every documented family must be in the scrape (with at least one sample)."""
import re
import sys


def doc_families(path, program):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^## Metrics\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        sys.exit(f"{path}: no '## Metrics' section")
    sub = re.search(r"^### [^\n]*\b%s\b[^\n]*\n(.*?)(?=^### |\Z)" % re.escape(program), m.group(1),
                    re.S | re.M)
    if not sub:
        sys.exit(f"{path}: no '### ... {program} ...' subsection under Metrics")
    fams = {}
    for line in sub.group(1).splitlines():
        row = re.match(r"^\|\s*`(margo_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|\s*([^|]*)\|", line)
        if row:
            labels = set(re.findall(r"`([a-z_]+)`", row.group(3)))
            fams[row.group(1)] = (row.group(2), labels)
    if not fams:
        sys.exit(f"{path}: no metrics rows for {program}")
    return fams


def scrape_families(path):
    fams = {}
    types = {}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        t = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if t:
            types[t.group(1)] = t.group(2)
            fams.setdefault(t.group(1), set())
            continue
        if not line or line.startswith("#"):
            continue
        s = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$", line)
        if not s:
            sys.exit(f"{path}: not a sample line: {line!r}")
        name = s.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        fam = base if types.get(base) == "histogram" else name
        if fam not in types:
            sys.exit(f"{path}: sample {name} before its # TYPE line")
        labels = set()
        rest = s.group(3) or ""
        while rest:  # name="value" pairs, values escaped as the format says
            pair = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)', rest)
            if not pair:
                sys.exit(f"{path}: bad labels in {line!r}")
            labels.add(pair.group(1))
            rest = rest[pair.end():]
        labels -= {"le"}
        fams[fam] |= labels
    return {f: (types[f], fams[f]) for f in types}


def main():
    doc = doc_families(sys.argv[1], sys.argv[2])
    got = scrape_families(sys.argv[3])
    errors = []
    for name, (typ, labels) in sorted(got.items()):
        if name not in doc:
            errors.append(f"{name} ({typ}) is exposed but not documented")
            continue
        dtyp, dlabels = doc[name]
        if dtyp != typ:
            errors.append(f"{name}: documented as {dtyp}, exposed as {typ}")
        if labels and labels != dlabels:
            errors.append(f"{name}: documented labels {sorted(dlabels)}, exposed {sorted(labels)}")
    for name in sorted(set(doc) - set(got)):
        errors.append(f"{name} is documented but not exposed")
    for e in errors:
        print("metrics_doc:", e)
    if not errors:
        print(f"metrics_doc: {len(got)} {sys.argv[2]} metric families match the docs")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
