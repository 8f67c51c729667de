#!/usr/bin/env python3
"""Table of deploy/app-kshot.sh's evaluations: per hospital and k, the
federated and the centralised meta-initialisation adapted, their
difference (per seed, then mean ± std), local only, and in how many seeds
the federated one beat local only.

usage: app-kshot-summary.py KSHOT.jsonl
"""
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def ms(v):
    v = [x for x in v if x is not None and x >= 0]
    if not v: return "n/a"
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}"
sites = list(dict.fromkeys(r["site"] for r in rows))
ks = sorted({r["k"] for r in rows})
seeds = sorted({r["seed"] for r in rows})
print(f"held-out accuracy, mean ± std over {len(seeds)} seed(s); k labelled images per class")
print("| hospital | k | federated (adapted) | centralised (adapted) | fed − central | local only | federated > local (seeds) |")
print("|---|---|---|---|---|---|---|")
for s in sites:
    for k in ks:
        f = {r["seed"]: r for r in rows if r["site"] == s and r["k"] == k and r["arm"] == "federated"}
        c = {r["seed"]: r for r in rows if r["site"] == s and r["k"] == k and r["arm"] == "central"}
        both = [x for x in seeds if x in f and x in c]
        diff = ms([f[x]["accuracy"] - c[x]["accuracy"] + 1 for x in both]).split(" ± ")
        diff = f"{float(diff[0]) - 1:+.3f} ± {diff[1]}" if len(diff) == 2 else "n/a"
        wins = sum(f[x]["accuracy"] > f[x]["accuracy_local"] for x in f)
        role = next(r["role"] for r in rows if r["site"] == s)
        print(f"| {s}{' (new)' if role == 'new' else ''} | {k} | {ms([f[x]['accuracy'] for x in f])} | "
              f"{ms([c[x]['accuracy'] for x in c])} | {diff} | {ms([f[x]['accuracy_local'] for x in f])} | "
              f"{wins}/{len(f)} |")
