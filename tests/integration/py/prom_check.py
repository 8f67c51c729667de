#!/usr/bin/env python3
"""A strict checker of the Prometheus text exposition format (0.0.4), as
the textfile collector and Prometheus parse it: metric and label name
syntax, label value escapes, numbers, one HELP/TYPE per family before its
samples, families contiguous, no duplicate series, histograms with
cumulative buckets, +Inf equal to _count, and _sum. Standard library only.

usage: prom_check.py FILE  -> prints "ok N samples" and a JSON dict
{series: value} on the last line; exit 1 naming FILE:LINE on the first
violation."""
import json
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def die(where, msg):
    print(f"prom_check: {where}: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_value(s, where):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        die(where, f"bad number {s!r}")
    return float(s)


def parse_labels(s, i, where):
    """s[i] == '{'; returns (labels dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            die(where, f"bad label name at column {i + 1}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            die(where, f"label {name}: expected =\"")
        i += 2
        val = []
        while True:
            if i >= len(s):
                die(where, f"label {name}: unterminated value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    die(where, f"label {name}: bad escape \\{nxt}")
                val.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if c == "\n":
                die(where, "newline in a label value")
            if c == '"':
                i += 1
                break
            val.append(c)
            i += 1
        if name in labels:
            die(where, f"label {name} twice")
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            die(where, f"expected , or }} after label {name}")


def family_of(name, types):
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and types.get(name[: -len(suf)]) in ("histogram", "summary"):
            return name[: -len(suf)]
    return name


def main():
    path = sys.argv[1]
    text = open(path, encoding="utf-8").read()
    if not text.endswith("\n"):
        die(path, "does not end with a newline")
    types, helps, seen_series, done_families = {}, set(), {}, set()
    current = None
    samples = {}
    hist = {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"{path}:{n}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    die(where, f"bad metric name {name!r}")
                if name in done_families:
                    die(where, f"{name}: {parts[1]} after its family ended")
                if parts[1] == "HELP":
                    if name in helps:
                        die(where, f"second HELP for {name}")
                    helps.add(name)
                else:
                    if name in types:
                        die(where, f"second TYPE for {name}")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        die(where, f"bad TYPE line")
                    if any(family_of(k[0], types) == name for k in seen_series):
                        die(where, f"TYPE for {name} after its samples")
                    types[name] = parts[3]
            continue
        m = NAME.match(line)
        if not m:
            die(where, "bad metric name")
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, where)
        if i >= len(line) or line[i] != " ":
            die(where, "expected a space before the value")
        rest = line[i + 1:].split(" ")
        if len(rest) not in (1, 2) or rest[0] == "":
            die(where, "expected VALUE [TIMESTAMP]")
        value = parse_value(rest[0], where)
        if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
            die(where, "bad timestamp")
        fam = family_of(name, types)
        if fam != current:
            if fam in done_families:
                die(where, f"samples of {fam} are not contiguous")
            if current:
                done_families.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            die(where, f"duplicate series {name}{labels}")
        seen_series[key] = value
        t = types.get(fam, "untyped")
        if t == "counter" and (value < 0 or math.isnan(value)):
            die(where, f"counter {name} is {value}")
        if t == "histogram":
            h = hist.setdefault(fam, {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                if "le" not in labels:
                    die(where, "bucket without le")
                h["buckets"].append((parse_value(labels["le"], where), value))
            elif name.endswith("_sum"):
                h["sum"] = value
            elif name.endswith("_count"):
                h["count"] = value
            else:
                die(where, f"{name} in histogram {fam}")
        sel = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        samples[sel] = value
    for fam, h in hist.items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            die(path, f"histogram {fam}: no +Inf bucket last")
        if [x for x, _ in b] != sorted(x for x, _ in b):
            die(path, f"histogram {fam}: le not increasing")
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            die(path, f"histogram {fam}: buckets not cumulative")
        if h["count"] is None or h["sum"] is None or h["count"] != b[-1][1]:
            die(path, f"histogram {fam}: _count/_sum missing or +Inf != _count")
    print(f"ok {len(samples)} samples")
    print(json.dumps(samples))


main()
