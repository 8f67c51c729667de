#!/usr/bin/env python3
"""Generates docs/BENCHMARKS.md from the JSON results of `make bench`.

    python3 bench/report.py [--results bench/results] [--out docs/BENCHMARKS.md]
                            [--img docs/img]

Python standard library only. Every table names the command that produced
it and the code path (engine) behind it; every goal says whether it is met
and by how much. Plots are drawn by gnuplot from bench/plot/*.gp when
gnuplot is installed (otherwise the report says so)."""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile

SITES = ["Cleveland", "Hungary", "Switzerland", "VA"]
OURS = {"heart_flamby", "heart_personal", "heart_newsite", "rounds_floor",
        "rounds_engine", "run", "scale_sites", "compression",
        "dpsgd", "heart_privacy", "heart_privacy_global", "heart_select",
        "heart_select_split7", "wdbc_select", "heart_select_federated",
        "heart_select_federated_split7", "wdbc_select_federated",
        "large_model_100M", "large_model_10M_zero_copy", "flower_ref"}

# Issue 17's side-by-side table (one run, 2 cores, Flower 1.6 over gRPC
# without TLS, FedAvg, 200 rows per site, one epoch, batch 32; metafl with
# CURVE, signatures, audit, checkpoints; two alternating repetitions).
# Flower is not installable from Debian's packages here, so it cannot be
# re-measured: this table is the reference.
FLOWER_SIDE_BY_SIDE = [  # (P, N, metafl ms, Flower ms, speed-up)
    ("2,242", 4, "7.2 / 9.2", "13.0 / 11.3", "1.8× / 1.2×"),
    ("999,987", 4, "200 / 270", "549 / 637", "2.75× / 2.4×"),
    ("2,242", 8, "8.7 / 11.0", "20.9 / 24.6", "2.4× / 2.2×"),
    ("999,987", 8, "383 / 449", "1040 / 1087", "2.7× / 2.4×"),
]

# bench_heart privacy-global's pick-stability runs (PG_STABILITY; not a JSON):
# (repeat, recipe chosen at ε = 1 with fixed scaling, its CV accuracy, test
# mean4 over seeds 42-46, std). Repeat 0 is the table's own ε = 1 row.
PRIVACY_GLOBAL_STABILITY = [
    (1, "linear:13-1 lr 0.3 B 32 C 0.5 R 30 server adam 0.05", 0.7631, 0.7939, 0.0577),
    (2, "linear:13-1 lr 0.3 B 64 C 1 R 15 server sgd 1", 0.7631, 0.8133, 0.0223),
]
# The same ε = 1 pick (grid index 18) with a second, cruder public scaling
# (PG_ALT_SCALE=1 PG_STABILITY=1 PG_GRID=18): no centring, each unit divided
# by a round upper bound (age 100, blood pressure 200, cholesterol 500, heart
# rate 200, ST depression 5); test mean4 and std over seeds 42-46.
PRIVACY_GLOBAL_ALT_SCALE = (0.7663, 0.0136)
# The ε = 1 pick (grid 18) trained with 10 seeds: mean4 per seed.
PRIVACY_GLOBAL_SEEDS10 = [0.815, 0.793, 0.714, 0.685, 0.819, 0.546, 0.775, 0.780, 0.799, 0.692]

# Flower 1.6 on this kind of machine (ANCHORS.md): median fit round, ms.
FLOWER = {  # sites -> (2,242 params, 999,987 params, 999,987 no training)
    2: (4.4, 134.0, 43.0),
    4: (6.6, 353.0, 91.0),
    8: (12.8, 559.0, 275.0),
}


def cpu_cells(e):
    """(coord / sites / total CPU ms per round, lower bound on 2 cores) of a
    rounds_engine row as table cells; "–" when the row has no CPU columns
    (results from before bench/cpu_rounds.py)."""
    if not e or e.get("cpu_total_ms") is None:
        return "–", "–"
    return (f"{e['cpu_coord_ms']:.0f} / {e['cpu_sites_ms']:.0f} / {e['cpu_total_ms']:.0f}",
            f"{e['cpu_total_ms'] / 2:.0f}")


def cpu_resolution_ms(e):
    """How far a row's total CPU per round can be off: /proc counts whole
    clock ticks (10 ms) per process, N + 1 processes, over rounds_timed
    rounds (bench/cpu_rounds.py)."""
    return (e["sites"] + 1) * 10.0 / max(1, e.get("rounds_timed") or 1)


def cpu_vs_goal(e, goal_ms):
    """'over', 'within' or 'undecided' (the CPU budget of the goal on 2
    cores, 2 × goal_ms, lies within the tick resolution of the total)."""
    if abs(e["cpu_total_ms"] - 2 * goal_ms) <= cpu_resolution_ms(e):
        return "undecided"
    return "over" if e["cpu_total_ms"] / 2 > goal_ms else "within"


def cpu_verdict_2a(rows, long=False):
    """Whether the CPU lower bound alone (total CPU / 2 cores) already
    exceeds goal 2(a) (1.2 × the floor) at each (P, N). Short form for the
    goals table, long form (every point) for the text."""
    if not rows:
        return "" if not long else "no CPU columns in this run (rounds_engine.json predates them)."
    over = [(p, n, lb, g) for p, n, lb, g, e in rows if cpu_vs_goal(e, g) == "over"]
    und = [(p, n) for p, n, lb, g, e in rows if cpu_vs_goal(e, g) == "undecided"]
    if not long:
        text = ("; CPU bound alone over the goal at " +
                ", ".join(f"P={p:,} N={n}" for p, n, _, _ in over) +
                ": out of reach on 2 cores there") if over else \
            "; CPU bound within the goal where decidable: the gap is scheduling/latency"
        if und:
            text += ("; CPU undecided (within tick resolution) at " +
                     ", ".join(f"P={p:,} N={n}" for p, n in und))
        return text
    parts = []
    for p, n, lb, g, e in sorted(rows, key=lambda x: (x[0], x[1])):
        if cpu_vs_goal(e, g) == "undecided":
            parts.append(f"P = {p:,}, N = {n}: bound {lb:.1f} ms vs goal {g:.1f} ms – "
                         "undecided (the CPU budget lies within the ±"
                         f"{cpu_resolution_ms(e):.0f} ms tick resolution of the total)")
        elif lb > g:
            parts.append(f"P = {p:,}, N = {n}: bound {lb:.1f} ms > goal {g:.1f} ms – out of "
                         "reach on 2 cores for this implementation's work "
                         f"(coordinator {e['cpu_coord_ms']:.0f} ms, sites "
                         f"{e['cpu_sites_ms']:.0f} ms CPU per round)")
        else:
            parts.append(f"P = {p:,}, N = {n}: bound {lb:.1f} ms ≤ goal {g:.1f} ms – "
                         f"reachable in CPU; the remaining {e['median_ms'] - lb:.1f} ms of the "
                         "measured round are scheduling/latency (waits, wake-ups, fsync)")
    return "; ".join(parts) + "."


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"_error": str(e)}


def fmt(v, nd=4):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}".lstrip("0") if 0 <= v < 1 else f"{v:.{nd}f}"


def pm(m, s):
    return f"{fmt(m)} ± {fmt(s)}"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) // 1024} MiB"
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "mem": mem,
        "kernel": platform.release(),
        "commit": sh("git rev-parse --short HEAD"),
        "zmq": sh("pkg-config --modversion libzmq"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


class Doc:
    def __init__(self):
        self.lines = []
        self.goals = []  # (goal, target, measured, verdict)

    def p(self, *text):
        self.lines.extend(text)

    def table(self, header, rows):
        self.p("| " + " | ".join(header) + " |",
               "|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            self.p("| " + " | ".join(str(c) for c in r) + " |")
        self.p("")


def cmd_line(res):
    return f"`{res.get('command', '?')}`"


# ---- goal 1(a) ---------------------------------------------------------------

def flamby_section(d, res):
    d.p("## 1(a) FLamby's Fed-Heart-Disease rows reproduced", "")
    if "_error" in res:
        d.p(f"Not available: {res['_error']}.", "")
        d.goals.append(("1(a) FLamby rows within 2σ", "all 5 rows", "not run", "NOT MET"))
        return
    d.p(f"Command: {cmd_line(res)} (seeds {res['seeds'][0]}–{res['seeds'][-1]}, "
        f"{res['date']}). Path: {res['engine']}. The harness reads the raw files "
        f"itself and checks them against `data/heart.h`: largest difference "
        f"{res.get('data_check_max_diff', '?')}.", "")
    s = res.get("settings", {})
    d.p("Settings (FLamby's `fed_heart_disease/common.py`, `config_heart_disease.json` "
        "and `benchmarks/fed_benchmark.py`): logistic regression `linear:13-1`, BCE, "
        f"batch 4; centralised (pooled, local): {s.get('central')}; federated: "
        f"{s.get('rounds')} rounds, {s.get('local')}; FedAvg {s.get('fedavg')}; FedAdam "
        f"{s.get('fedadam')}; FedAdagrad {s.get('fedadagrad')}. Initial θ as "
        "`torch.nn.Linear` (U(±1/√13)). Accuracy at threshold 0.5 on each site's "
        "own test rows; mean ± sample std over the seeds.", "")
    anchors = res.get("anchors", {})
    maj = res.get("majority", [])
    rows = []
    if maj:
        rows.append(["majority class"] + [fmt(v) for v in maj]
                    + [fmt(sum(maj) / 4), "–", "–", "–"])
    verdicts = []
    for r in res["rows"]:
        name = r["name"]
        a = anchors.get(name)
        cells = [name] + [pm(m, s_) for m, s_ in zip(r["site_mean"], r["site_std"])]
        cells.append(pm(r["mean4"], r["mean4_std"]))
        if a:
            diff = r["mean4"] - a[4]
            tol = 2 * r["mean4_std"]
            ok = abs(diff) <= tol
            nsite = sum(1 for i in range(4)
                        if abs(r["site_mean"][i] - a[i]) <= max(2 * r["site_std"][i], 1e-9))
            cells += [fmt(a[4]), f"{diff:+.4f} (2σ = {tol:.4f})",
                      ("yes" if ok else "**no**") + f"; sites {nsite}/4"]
            verdicts.append((name, ok, diff, tol))
        else:
            cells += ["–", "–", "extra row"]
        rows.append(cells)
    d.table(["training"] + SITES + ["mean of 4", "FLamby", "difference", "within 2σ (mean; per site)"],
            rows)
    d.p("FLamby's published per-site numbers for comparison:", "")
    d.table(["FLamby"] + SITES + ["mean of 4"],
            [[k] + [fmt(v) for v in vals] for k, vals in anchors.items()])
    d.p("Notes:",
        "- FLamby scores the pooled model on the per-site test loaders, i.e. test rows "
        "scaled with each site's own statistics while the model was trained on "
        "pooled-scaled rows (`fed_benchmark.py` builds `test_dls` with `pooled=False`). "
        "The `pooled` row does the same, which is what reproduces FLamby's .7353; the "
        "consistent scoring (pooled statistics) is the extra row and is much higher.",
        "- FLamby trains pooled/local with Adam (lr 1e-3, 50 epochs); metafl's FedAvg "
        "local trainer is plain SGD, so the centralised rows use SGD lr 1e-2 for 50 "
        "epochs (both converge on this convex problem).",
        "- FLamby's FedAvg does exactly 100 mini-batch updates per site and round; "
        "metafl's FedAvg counts epochs, so each site gets round(100·4/n_train) epochs "
        "(2, 2, 13, 5 for 199, 172, 30, 85 rows) – 100, 86, 104, 110 updates.",
        "- FLamby's FedAdam/FedAdagrad server step has no bias correction (first "
        "step ≈ 3.2 × lr); metafl's server Adam is bias-corrected (first step ≈ lr), "
        "so with FLamby's server lr 0.01 over 15 rounds θ moves less from its "
        "initialisation; this is the main reason FedAdam's mean sits below FLamby's "
        "and its seed-to-seed spread is large. The two `with FLamby's server rule` rows "
        "check this: the same runs with FLamby's un-corrected update (coded in the "
        "harness only, not in production) land on FLamby's numbers. A server-side lr "
        "for metafl's bias-corrected Adam should be chosen for it, not copied from FLamby.",
        "- These rows use the harness loop (site workers + `fed/aggregate.h` + "
        "`fed/server_step.h`) because the round engine sends one task to every site and "
        "initialises θ itself. The last row runs FedAvg through the production round "
        "engine instead (2 local epochs everywhere, the engine's He-uniform θ₀) as a "
        "cross-check of the same code path used in 1(b) and 1(c). It scores lower: with "
        "FLamby's small local rate (1e-3) and 15 rounds, FedAvg is far from converged, so "
        "the result still depends on θ₀, and He-uniform weights (±0.68) start further "
        "from a good model than torch's ±0.28.", "")
    bad = [v for v in verdicts if not v[1]]
    measured = "; ".join(f"{n} {diff:+.4f}" for n, _, diff, _ in verdicts)
    loose = [f"{n} only loosely (2σ = {tol:.3f})" for n, ok, _, tol in verdicts
             if ok and tol > 0.05]
    d.goals.append(("1(a) FLamby rows: mean of 4 within 2σ of published",
                    f"{len(verdicts)} rows", measured,
                    ("met" + ("; " + ", ".join(loose) if loose else "")) if not bad else
                    "NOT MET for " + ", ".join(f"{n} (off by {abs(diff) - tol:.4f} beyond 2σ)"
                                               for n, _, diff, tol in bad)))


# ---- goal 1(b) ---------------------------------------------------------------

def personal_section(d, res, img_dir, tmp, plots):
    d.p("## 1(b) Personalisation: federated model, then k local fine-tuning steps", "")
    if "_error" in res:
        d.p(f"Not available: {res['_error']}.", "")
        d.goals.append(("1(b) personalised mean accuracy", "≥ 0.81", "not run", "NOT MET"))
        return
    s = res.get("settings", {})
    d.p(f"Command: {cmd_line(res)} (seeds {res['seeds'][0]}–{res['seeds'][-1]}). "
        f"Path: {res['engine']}.", "",
        f"Each algorithm trains the federated model for {s.get('rounds')} rounds over the "
        "four sites (each site's local training is `mfl_learner_meta_train` inside the "
        "production site worker); then each site fine-tunes it with k full-batch SGD "
        f"steps (lr {s.get('fine_tune_lr')}) on all its training rows and is scored on "
        f"its own test rows. Local recipes: FedAvg {s.get('fedavg')}; meta-learners "
        f"{s.get('meta')}. Reptile β is the server step (θ ← θ + β·mean Δ). "
        "A diverged adaptation (non-finite loss) scores 0 and is counted.", "")
    by = {}
    for r in res["rows"]:
        by[(r["model"], r["algo"], r["steps"])] = r
    models = sorted({r["model"] for r in res["rows"]}, key=lambda m: m.startswith("mlp"))
    algos = []
    for r in res["rows"]:
        if r["algo"] not in algos:
            algos.append(r["algo"])
    rows = []
    best = (0, "")
    for m in models:
        for a in algos:
            cells = [m, a]
            for k in (0, 10, 100):
                r = by.get((m, a, k))
                if not r:
                    cells.append("–")
                    continue
                txt = pm(r["mean4"], r["mean4_std"])
                if r.get("diverged"):
                    txt += f" ({r['diverged']} diverged)"
                cells.append(txt)
                if k > 0 and r["mean4"] > best[0]:
                    best = (r["mean4"], f"{m} {a} k={k}")
            r100 = by.get((m, a, 100))
            cells.append(" / ".join(fmt(v, 3) for v in r100["site_mean"]) if r100 else "–")
            rows.append(cells)
    maj = res.get("majority")
    if maj:
        rows.append(["majority class", "–", "–", "–", fmt(sum(maj) / 4),
                     " / ".join(fmt(v, 3) for v in maj)])
    d.table(["model", "algorithm", "before (k=0)", "k = 10", "k = 100",
             "k = 100 per site (C/H/S/V)"], rows)
    goal = res.get("goal", 0.81)
    met = best[0] >= goal
    n_ok = sum(1 for r in res["rows"] if r["steps"] > 0 and r["mean4"] >= goal)
    n_all = sum(1 for r in res["rows"] if r["steps"] > 0)
    d.p(f"{n_ok} of {n_all} (model, algorithm, k) settings reach {goal}; the best is within "
        "about one seed-to-seed standard deviation of the goal, so \"met\" is narrow. "
        "Hyper-parameters were fixed before looking at test accuracy (no tuning on the "
        "test rows).", "")
    d.p(f"Goal: mean personalised accuracy ≥ {goal}. Best: {fmt(best[0])} ({best[1]}) – "
        + ("**met**." if met else f"**not met**, short by {goal - best[0]:.4f}."), "",
        "FLamby's reference (ANCHORS.md): FedAvg then 100 fine-tuning steps, 0.7178 before "
        "and 0.7351 after. Meta-SGD adapts with its learned per-parameter rates, which are "
        "tuned for its 5 inner steps; 100 steps with them overshoot (see its k = 100 row).",
        "")
    d.goals.append(("1(b) personalised mean accuracy (best variant)", f"≥ {goal}",
                    f"{fmt(best[0])} ({best[1]})",
                    "met" if met else f"NOT MET (short by {goal - best[0]:.4f})"))
    # plot: accuracy vs fine-tuning steps, one line per model/algorithm
    dat = os.path.join(tmp, "personal.dat")
    with open(dat, "w") as f:
        cols = [(m, a) for m in models for a in algos]
        f.write("steps " + " ".join(f'"{m.split(":")[0]} {a}"' for m, a in cols) + "\n")
        for k in (0, 10, 100):
            vals = [by.get((m, a, k), {}).get("mean4", float("nan")) for m, a in cols]
            f.write(f"{k} " + " ".join(f"{v:.4f}" for v in vals) + "\n")
    plots.append(("personal.gp", dat, os.path.join(img_dir, "heart_personal.png"),
                  len(models) * len(algos)))
    d.p("![accuracy vs fine-tuning steps](img/heart_personal.png)", "")


# ---- goal 1(c) ---------------------------------------------------------------

def newsite_section(d, res, img_dir, tmp, plots):
    d.p("## 1(c) A new hospital: meta-train on three sites, adapt to the fourth", "")
    if "_error" in res:
        d.p(f"Not available: {res['_error']}.", "")
        d.goals.append(("1(c) new hospital, k = 10, 10 steps", "≥ 0.78", "not run", "NOT MET"))
        return
    s = res.get("settings", {})
    d.p(f"Command: {cmd_line(res)} (seeds {res['seeds'][0]}–{res['seeds'][-1]}, "
        f"{res.get('draws_per_seed')} drawn support sets per seed, held-out site and "
        f"setting). Path: {res['engine']}.", "",
        f"Each site in turn is the new hospital; the other three train the federated "
        f"model for {s.get('rounds')} rounds. Adaptation: {s.get('adaptation')}, lr "
        f"{s.get('adapt_lr')}. Scratch: {s.get('scratch')}. Numbers are the mean over the "
        "four held-out sites (± std over seeds).", "")
    by = {}
    for r in res["rows"]:
        by[(r["model"], r["algo"], r["k"], r["steps"])] = r
    models = sorted({r["model"] for r in res["rows"]}, key=lambda m: m.startswith("mlp"))
    algos = []
    for r in res["rows"]:
        if r["algo"] not in algos:
            algos.append(r["algo"])
    ks = sorted({r["k"] for r in res["rows"]})
    steps = sorted({r["steps"] for r in res["rows"]})
    header = ["model", "method"] + [f"k={k}, {st} steps" for st in steps for k in ks]
    rows = []
    best = (0, "")
    for m in models:
        for a in algos:
            cells = [m, a]
            for st in steps:
                for k in ks:
                    r = by.get((m, a, k, st))
                    if not r:
                        cells.append("–")
                        continue
                    txt = pm(r["mean4"], r["mean4_std"])
                    if r.get("diverged"):
                        txt += f" ({r['diverged']} div.)"
                    cells.append(txt)
                    if k == 10 and st == 10 and r["mean4"] > best[0]:
                        best = (r["mean4"], f"{m} {a}")
            rows.append(cells)
    d.table(header, rows)
    goal = res.get("goal", 0.78)
    met = best[0] >= goal
    d.p(f"Goal: ≥ {goal} mean accuracy at k = 10 with 10 steps. Best: {fmt(best[0])} "
        f"({best[1]}) – " + ("**met**." if met else f"**not met**, short by {goal - best[0]:.4f}.")
        + " Per held-out site (k = 10, 10 steps):", "")
    rows = []
    for m in models:
        for a in algos:
            r = by.get((m, a, 10, 10))
            if r:
                rows.append([m, a] + [fmt(v) for v in r["site_mean"]])
    maj = [.5385, .6292, .9375, .7778]
    rows.append(["majority class", "(of the site's training rows)"] + [fmt(v) for v in maj])
    d.table(["model", "method"] + SITES, rows)
    bk = None
    for m in models:
        for a in algos:
            r = by.get((m, a, 10, 10))
            if r and (bk is None or r["mean4"] > bk["mean4"]):
                bk = r
    if bk:
        others = [bk["site_mean"][i] for i in (0, 1, 3)]
        d.p("Switzerland's test rows are 15 positives of 16, so a model that leans positive "
            "scores ≈ .94 there and lifts the mean of 4. For the best method "
            f"({bk['model']} {bk['algo']}) Cleveland / Hungary / VA score "
            + " / ".join(fmt(v) for v in others)
            + f" (mean of these three {fmt(sum(others) / 3)}, against {fmt((maj[0] + maj[1] + maj[3]) / 3)} "
            "for the majority class).", "")
    d.goals.append(("1(c) new hospital, k = 10, 10 steps (best method)", f"≥ {goal}",
                    f"{fmt(best[0])} ({best[1]})",
                    "met" if met else f"NOT MET (short by {goal - best[0]:.4f})"))
    for m in models:
        tag = m.split(":")[0]
        dat = os.path.join(tmp, f"newsite_{tag}.dat")
        with open(dat, "w") as f:
            f.write("k " + " ".join(f'"{a}"' for a in algos) + "\n")
            for k in ks:
                vals = [by.get((m, a, k, 10), {}).get("mean4", float("nan")) for a in algos]
                f.write(f"{k} " + " ".join(f"{v:.4f}" for v in vals) + "\n")
        png = os.path.join(img_dir, f"heart_newsite_{tag}.png")
        plots.append(("newsite.gp", dat, png, len(algos)))
        d.p(f"![new hospital accuracy vs k, {m}, 10 steps](img/heart_newsite_{tag}.png)", "")


# ---- goal 2 -----------------------------------------------------------------

def rounds_section(d, floor, engine, img_dir, tmp, plots, site=None):
    d.p("## 2. Speed", "")
    d.p("### 2(a) Round overhead vs the wire floor", "")
    if "_error" in floor:
        d.p(f"Floor not measured: {floor['_error']}.", "")
    else:
        d.p(f"Floor: {floor.get('transport')} on loopback, one ROUTER (its own context, "
            f"{floor.get('io_threads')} I/O threads, as the coordinator's server) and N "
            "DEALER sites (one context each), θ (4·P bytes) zero-copy to every site and a "
            "Δ of 4·P bytes back from each; no protobuf, hashing, signatures or "
            "aggregation; both framings measured (one frame per message, and 1 MiB frames "
            "as the daemons send since f3d1d46) and the faster one is the floor. "
            f"Median of {floor.get('rounds')} rounds after one warm-up. "
            f"Command: `bench_rounds_floor --rounds {floor.get('rounds')}` ({floor.get('date')}).",
            "")
    eng, tmpfs = {}, {}
    if "_error" not in engine:
        for r in engine.get("rows", []):
            if r.get("training"):
                continue
            if r.get("run_dir") == "tmpfs":
                tmpfs[(r["params"], r["sites"])] = r
            else:
                eng[(r["params"], r["sites"])] = r
    rows = []
    worst = None
    cpu_bound_rows = []  # (P, N, CPU lower bound ms, goal ms, engine row)
    for r in floor.get("rows", []):
        e = eng.get((r["params"], r["sites"]))
        # prefer the floor measured right after the daemons' run (same load)
        fl = e.get("floor_ms") if e and e.get("floor_ms") else None
        base = fl or r["median_ms"]
        ratio = e["median_ms"] / base if e and base > 0 else None
        if ratio is not None:
            worst = max(worst or 0, ratio)
        t = tmpfs.get((r["params"], r["sites"]))
        tfl = t.get("floor_ms") if t and t.get("floor_ms") else None
        tratio = t["median_ms"] / tfl if t and tfl else None
        cpu, bound = cpu_cells(e)
        fcpu = e.get("floor_cpu_ms") if e else None
        # the goal in ms for this point: 1.2 × the floor's round time; the
        # CPU bound (total CPU / 2 cores) alone over it = out of reach here
        if e and e.get("cpu_total_ms") is not None and base:
            lb = e["cpu_total_ms"] / 2
            cpu_bound_rows.append((r["params"], r["sites"], lb, 1.2 * base, e))
        rows.append([f"{r['params']:,}", r["sites"], f"{r['mbytes']:.1f}",
                     f"{r['median_ms']:.2f}", f"{r['mb_per_s']:.0f}",
                     f"{fl:.2f}" if fl else "–",
                     f"{e['median_ms']:.2f}" if e else "not measured",
                     f"{ratio:.2f}" if ratio else "–",
                     cpu, f"{fcpu:.1f}" if fcpu is not None else "–", bound,
                     f"{t['median_ms']:.2f} ({tratio:.2f})" if t and tratio else "–"])
    if rows:
        d.table(["P", "N", "MB per round", "floor median ms (sweep)", "floor MB/s",
                 "floor ms (right after the daemons)", "metafl round median ms",
                 "ratio (goal ≤ 1.2)",
                 "CPU ms per round (coordinator / sites / total)", "floor CPU ms per round",
                 "lower bound on 2 cores = total CPU / 2, ms",
                 "diagnostic: run dir on tmpfs, ms (ratio)"], rows)
        d.p("CPU per round: user + system time of the coordinator and of every agent "
            "(all threads) from /proc/PID/stat at the coordinator's metrics lines of round 1 "
            "and of the last round, divided by the rounds between (bench/cpu_rounds.py): "
            "rounds 2..R exactly, start-up and evaluation excluded; clock-tick resolution "
            "(10 ms per process over the run, so ±2 ms per round and process with R = 6: "
            "read small-P values as \"a few ms at most\"). The floor's CPU is getrusage over "
            "its timed rounds (all threads). CPU time adds up across processes however "
            "they are scheduled, so total CPU / 2 is the fastest this work could run on 2 "
            "cores, whatever the machine load; it does not depend on the other engineers' "
            "processes the way the wall-clock medians do.", "")
    if "_error" in engine:
        d.p(f"The real coordinator + agents were not measured: {engine['_error']}.", "")
        d.goals.append(("2(a) round overhead / CURVE floor", "≤ 1.2", "not measured",
                        "NOT MEASURED"))
    else:
        d.p(f"metafl rounds: {engine.get('how', '')} Command: `{engine.get('command', '')}`.", "")
        if engine.get("failures"):
            d.p("Runs that failed: " + "; ".join(engine["failures"]) + ".", "")
        d.p("Where the time goes at small P (measured by hand once at 07:30 on 2026-11-24, "
            "on an earlier commit, `COORD_WRAP=\"strace -f "
            "-T -e trace=fsync,rename\" bash bench/rounds_engine.sh` with P = 10,012, N = 2, "
            "4 rounds): the coordinator made 49 fsync calls (about 10 per round: "
            "status.json rewritten atomically after every event, one audit record fsync per "
            "accepted update, the checkpoint file and its directory) totalling 90 ms, i.e. "
            "≈ 22 ms of a ≈ 23 ms round; the wire floor for the same bytes is < 1 ms. So "
            "for small models the round is bound by durable writes, not by the wire; "
            "writing status.json without fsync and syncing the audit log once per round "
            "would remove most of it. The last column repeats every point with the "
            "coordinator's run dir and the agents' audit logs on tmpfs (where fsync costs "
            "nothing), in the same run: where it is much faster than the disk column, "
            "durable writes still dominate. Since then status.json is no longer fsync'd, "
            "the audit log is synced once per round and the checkpoint's fsyncs run on a "
            "helper thread (docs/PERFORMANCE.md, round 2); round times are in µs.", "")
        if worst is not None:
            big = [e["median_ms"] / e["floor_ms"] for k_, e in eng.items()
                   if k_[0] >= 999987 and e.get("floor_ms")]
            extra = (f"; at P ≥ 1M: {min(big):.1f}–{max(big):.1f}" if big else "")
            d.goals.append(("2(a) round overhead / CURVE floor (worst P, N)", "≤ 1.2",
                            f"{worst:.2f}{extra}", ("met" if worst <= 1.2 else
                            f"NOT MET (over by {worst - 1.2:.2f}; small P is fsync-bound, "
                            "see the tmpfs column)") + cpu_verdict_2a(cpu_bound_rows)))
            d.p("CPU against the goal (lower bound = total CPU / 2 against 1.2 × the floor "
                "measured right after): " + cpu_verdict_2a(cpu_bound_rows, long=True), "")
        else:
            d.goals.append(("2(a) round overhead / CURVE floor", "≤ 1.2", "no matching rows",
                            "NOT MEASURED"))
    # Flower comparison: no-training rounds at ~1M params
    fl_rows = []
    for n, (small, big, notrain) in FLOWER.items():
        f1m = next((r for r in floor.get("rows", []) if r["params"] in (999987, 1000000)
                    and r["sites"] == n), None)
        e1m = eng.get((999987, n)) or eng.get((1000000, n))
        cpu, bound = cpu_cells(e1m)
        fl_rows.append([n, f"{notrain:.0f}",
                        f"{f1m['median_ms']:.1f}" if f1m else "–",
                        f"{e1m['median_ms']:.1f}" if e1m else "not measured",
                        f"{notrain / e1m['median_ms']:.1f}×" if e1m else "–", cpu, bound])
    d.p("Against Flower 1.6 (ANCHORS.md: gRPC, no encryption, ~1M parameters, no local "
        "training; metafl at 999,987 parameters (MLP 32-28571-2), with CURVE encryption):", "")
    d.table(["N", "Flower ms", "CURVE floor ms", "metafl ms", "metafl speed-up",
             "metafl CPU ms per round (coordinator / sites / total)",
             "lower bound on 2 cores, ms"], fl_rows)
    # plot: time vs P per N (floor and engine)
    if floor.get("rows"):
        dat = os.path.join(tmp, "rounds.dat")
        ns = sorted({r["sites"] for r in floor["rows"]})
        ps = sorted({r["params"] for r in floor["rows"]})
        with open(dat, "w") as f:
            f.write("P " + " ".join(f'"floor N={n}" "metafl N={n}"' for n in ns) + "\n")
            for p_ in ps:
                vals = []
                for n in ns:
                    fr = next((r for r in floor["rows"] if r["params"] == p_ and r["sites"] == n),
                              None)
                    er = eng.get((p_, n))
                    vals += [fr["median_ms"] if fr else float("nan"),
                             er["median_ms"] if er else float("nan")]
                f.write(f"{p_} " + " ".join(f"{v:.4f}" for v in vals) + "\n")
        plots.append(("rounds.gp", dat, os.path.join(img_dir, "rounds_time.png"), 2 * len(ns)))
        d.p("![round time vs P and N](img/rounds_time.png)", "")

    d.p("### 2(b) Full rounds with training", "")
    trows = [r for r in engine.get("rows", []) if r.get("training")] if "_error" not in engine else []
    # one site's local epoch alone, in-process (bench_site_round), for the 1M rows
    train1 = None
    if site and "_error" not in site:
        train1 = next((x["cpu_ms"] for x in site.get("rows", []) if x["piece"] == "train"), None)
        wround1 = next((x["cpu_ms"] for x in site.get("rows", [])
                        if x["piece"] == "worker_round"), None)
    if trows:
        rows = []
        verdicts = []
        for r in trows:
            fl = FLOWER.get(r["sites"])
            ref = None
            if fl:
                ref = fl[0] if r["params"] < 10000 else fl[1]
            cpu, bound = cpu_cells(r)
            goal = ref / 3 if ref else None
            tr = (f"{r['sites'] * train1:.0f} ({r['sites']} × {train1:.1f})"
                  if train1 and r["params"] == site.get("params") else "–")
            if goal and r.get("cpu_total_ms") is not None:
                lb = r["cpu_total_ms"] / 2
                if cpu_vs_goal(r, goal) == "undecided":
                    v = (f"bound {lb:.0f} vs goal {goal:.1f}: undecided (±"
                         f"{cpu_resolution_ms(r):.0f} ms CPU tick resolution)")
                elif lb > goal:
                    v = (f"bound {lb:.0f} > goal {goal:.0f}: out of reach on 2 cores for "
                         "this work")
                else:
                    v = (f"bound {lb:.0f} ≤ goal {goal:.0f}: reachable in CPU; "
                         f"{r['median_ms'] - lb:.0f} ms of the round is scheduling/latency")
                verdicts.append((r, lb, goal, cpu_vs_goal(r, goal)))
            else:
                v = "–"
            rows.append([r.get("model", ""), f"{r['params']:,}", r["sites"],
                         f"{r['median_ms']:.1f}", f"{ref:.1f}" if ref else "–",
                         f"{ref / r['median_ms']:.1f}×" if ref else "–",
                         f"{goal:.1f}" if goal else "–", cpu, bound, tr, v])
        d.table(["model", "P", "N", "metafl ms (CURVE)", "Flower ms (plain)",
                 "speed-up (goal ≥ 3×)", "goal ms (Flower / 3)",
                 "CPU ms per round (coordinator / sites / total)",
                 "lower bound on 2 cores = total CPU / 2, ms",
                 "of which local training alone, CPU ms (N × one site's epoch, "
                 "bench_site_round)", "CPU bound vs goal"], rows)
        if train1:
            d.p(f"One site's local round in-process (`{site.get('command')}`, "
                f"{site.get('date')}; {site.get('how', '')}): "
                + ", ".join(f"{x['piece']} {x['cpu_ms']:.1f} ms" for x in site.get("rows", []))
                + f" of CPU. The agent's whole local computation (worker_round "
                f"{wround1:.1f} ms) is the training plus Δ's BLAKE2b and the signature; "
                "in the daemon a site also opens θ (CURVE), hashes θ to check "
                "model_hash, and seals Δ, and the coordinator seals θ and opens, hashes "
                "and folds every Δ (docs/PERFORMANCE.md, \"Where a 1M round's CPU goes\").",
                "")
        d.p("Where a 1M, N = 4 round's CPU goes (measured by hand on 2026-11-24 15:23 UTC "
            "on a shared machine, `perf record -F 499` over "
            "`ROUNDS_P=\" \" ROUNDS_N=4 ROUNDS_R=30 ROUNDS_TRAIN_N=4 ROUNDS_TMPFS=0 bash "
            "bench/rounds_engine.sh`, sample shares of each process applied to its CPU per "
            "round, bench/perf_rounds.py; docs/PERFORMANCE.md, \"Where a 1M round's CPU "
            "goes\"): of ≈ 305 ms CPU "
            "per round, local training ≈ 145 ms (4 sites; more than half of it the two "
            "full-data forward passes FedAvg runs only for its loss_before/loss_after "
            "metrics: bench_site_round's loss_pass), BLAKE2b "
            "≈ 52 ms (≈ 14 hashes of 4 MB: each site hashes θ and Δ, the coordinator each "
            "Δ, θ and the checkpoint), CURVE's XSalsa20-Poly1305 ≈ 35 ms (θ sealed 4×, "
            "opened 4×; Δ sealed 4×, opened 4×), kernel (loopback TCP copies, scheduling, "
            "page faults) ≈ 37 ms, memcpy/memset/malloc ≈ 21 ms, aggregation and other "
            "metafl code ≈ 8 ms, Ed25519 < 1 ms. The goal's 2-core budget at N = 4 is "
            "2 × 117.7 ≈ 235 ms of CPU.", "")
        sp = [float(r[5][:-1]) for r in rows if r[5] != "–"]
        if sp:
            out = [f"P={r['params']:,} N={r['sites']} ({lb:.0f} > {g:.0f} ms)"
                   for r, lb, g, o in verdicts if o == "over"]
            inside = [f"P={r['params']:,} N={r['sites']} ({lb:.0f} ≤ {g:.0f} ms: "
                      f"{r['median_ms'] - lb:.0f} ms scheduling/latency)"
                      for r, lb, g, o in verdicts if o == "within"]
            und = [f"P={r['params']:,} N={r['sites']}" for r, lb, g, o in verdicts
                   if o == "undecided"]
            cpu_note = ""
            if out:
                cpu_note += ("; CPU lower bound alone over the goal at " + ", ".join(out) +
                             ": out of reach on 2 cores")
            if inside:
                cpu_note += "; CPU lower bound within the goal at " + ", ".join(inside)
            if und:
                cpu_note += "; CPU undecided (tick resolution) at " + ", ".join(und)
            d.goals.append(("2(b) full round vs Flower (worst)", "≥ 3×", f"{min(sp):.1f}×",
                            ("met" if min(sp) >= 3 else f"NOT MET (short by {3 - min(sp):.1f}×)")
                            + cpu_note))
    else:
        d.p("Not measured in this run (needs the daemons' training path; see the run "
            "log below).", "")
        d.goals.append(("2(b) full round vs Flower", "≥ 3×", "not measured", "NOT MEASURED"))

    d.p("### 2(c) Coordinator peak RSS vs P and N", "")
    rss = [r for r in engine.get("rows", []) if r.get("coordinator_rss_kb")] \
        if "_error" not in engine else []
    if rss:
        d.table(["P", "N", "training", "coordinator peak RSS MiB", "RSS / (4·P bytes)"],
                [[f"{r['params']:,}", r["sites"], "yes" if r.get("training") else "no",
                  f"{r['coordinator_rss_kb'] / 1024:.1f}",
                  f"{r['coordinator_rss_kb'] * 1024 / (4 * r['params']):.1f}"] for r in rss])
    else:
        d.p("Not measured in this run.", "")


def large_model_section(d, res100, ab10):
    """Issue 17 item 3: the daemons' limits follow the model, and the
    memory and time of 100M (and 10M, A/B) parameters at N = 4
    (bench/large_model.sh)."""
    d.p("### 2(e) Large models: default limits, memory and time (issue 17)", "")
    d.p("No limit is raised by hand for a 100M-parameter model: the daemons' defaults "
        "follow the model (`docs/WIRE.md`, \"Limits and memory\"):", "")
    d.table(["daemon", "key", "default"], [
        ["coordinator", "`limits.chunked_upload_bytes`",
         "16 MiB: a larger update comes as 1 MiB chunks, spooled to an unnamed file"],
        ["coordinator", "`limits.max_message_bytes`",
         "256 MiB with chunked uploads (4·P + 1 MiB without them or with SecAgg)"],
        ["coordinator", "`limits.site_timeout_s`", "30 s per 10M parameters (300 s at 100M)"],
        ["site", "`limits.max_params`", "256 Mi floats"],
        ["site", "`limits.max_message_bytes`", "4 · max_params + 1 MiB (1 GiB + 1 MiB)"],
    ])
    d.p("Budgets (issue 17): coordinator peak RSS ≤ 3 × 4P + 64 MiB; each site ≤ θ + "
        "activations + 2 × 4P (activations estimated as rows × hidden units × 16 bytes). "
        "Peak RSS = VmHWM polled every 0.2 s; round = median open-to-open over rounds "
        "2..R; floor = `bench_rounds_floor` (raw CURVE, fp32 bytes, same P and N) right "
        "after. Command: `LARGE_P=100000000 LARGE_N=4 LARGE_R=3 bash bench/large_model.sh "
        "OUT.json` (`LARGE_P=10000000` for 10M; `METAFL_BUILD=` another build's directory "
        "for an A/B).", "")
    rows = []
    for label, res in (("100M", res100),):
        for r in (res or {}).get("rows", []):
            rows.append((label + (f" ({res.get('date', '?')})" if res else ""), r))
    for r in (ab10 or {}).get("rows", []):
        rows.append((f"10M {r.get('build', '')}".strip(), r))
    if not rows:
        d.p("No large-model results in this run.", "")
        return
    d.table(["run", "P", "coordinator MiB (× 4P; of budget)", "largest site MiB (× 4P; of "
             "budget)", "round ms", "floor ms", "ratio", "CPU ms/round coord / sites",
             "load"],
            [[lab, f"{r['params']:,}",
              f"{r['coordinator_peak_mib']} ({r['coordinator_peak_over_4P']}; "
              f"{r['coordinator_over_budget']})",
              f"{r['site_peak_mib']} ({r['site_peak_over_4P']}; {r['site_over_budget']})",
              fmt(r.get("round_ms"), 0), fmt(r.get("floor_ms"), 0),
              fmt(r.get("round_over_floor"), 2),
              f"{r.get('cpu_coord_ms')} / {r.get('cpu_sites_ms')}", r.get("loadavg_1m")]
             for lab, r in rows])
    for lab, r in rows:
        if lab.startswith("100M"):
            ok_c = r["coordinator_over_budget"] <= 1
            ok_s = r["site_over_budget"] <= 1
            d.goals.append(("2(e) 100M at N = 4, default limits: peak RSS / budget",
                            "≤ 1 (coordinator, sites)",
                            f"coordinator {r['coordinator_over_budget']}, largest site "
                            f"{r['site_over_budget']}; round {fmt(r.get('round_over_floor'), 2)}"
                            "× the CURVE floor",
                            "met" if ok_c and ok_s else "NOT MET"))
    d.p("Where the memory goes and what changed: `PERFORMANCE.md`, \"Large models\".", "")


def dpsgd_section(d, res):
    """DP-SGD step vs plain step (issue 11): bench/bench_dpsgd.c."""
    d.p("## 3. DP-SGD step (record-level differential privacy)", "")
    d.p("Command: `build/bench/bench_dpsgd` (writes bench/results/dpsgd.json). One DP-SGD "
        "step = per-example gradient norms in one batched pass (nn/per_example.h), the "
        "clipped sum as one backward with rescaled rows, Gaussian noise for every "
        "parameter from a CSPRNG, a Poisson sample drawn, the update; against the "
        "engine's plain SGD step on the same 32 rows (fused `mfl_model_sgd_step`, and "
        "unfused loss_grad + update). Medians; plain and DP runs alternate three times "
        "and keep their best median. Timings on a shared, loaded machine are noisy: "
        "compare the ratios of one run.", "")
    if not res or "_error" in res:
        d.p("Not run in this session.", "")
        d.goals.append(("3 DP-SGD step, heart MLP", "≤ 3× plain", "not run", "NOT MET"))
        d.goals.append(("3 DP-SGD step, 1M MLP", "≤ 5× plain", "not run", "NOT MET"))
        return
    rows = []
    for r in res["runs"]:
        rows.append([f"`{r['spec']}`", r["batch"], f"{r['plain_fused_ms']:.4g}",
                     f"{r['plain_unfused_ms']:.4g}", f"{r['dpsgd_ms']:.4g}",
                     f"{r['ratio']:.2f}×", f"{r['dpsgd_ms'] / r['plain_unfused_ms']:.2f}×",
                     f"≤ {r['goal']:g}×" if r["goal"] else "–"])
        if r["goal"]:
            name = "heart MLP" if r["spec"].startswith("mlp:13") else "1M MLP"
            worst = max(r["ratio"], r["dpsgd_ms"] / r["plain_unfused_ms"])
            d.goals.append((f"3 DP-SGD step, {name}", f"≤ {r['goal']:g}× plain",
                            f"{r['ratio']:.2f}× fused, "
                            f"{r['dpsgd_ms'] / r['plain_unfused_ms']:.2f}× unfused",
                            "met" if worst <= r["goal"] else "NOT MET"))
    d.table(["model", "batch", "plain fused ms", "plain unfused ms", "DP-SGD ms",
             "DP / fused", "DP / unfused", "goal"], rows)
    d.p(f"Run {res.get('date', '?')}; {res.get('machine', '')}.", "")


def heart_privacy_global_section(d, res):
    """The one global model under record-level DP (issue 11 item 9, FLamby's comparison)."""
    d.p("## 4b. The global model under DP: feature scaling and recipe (UCI heart)", "")
    if not res or "_error" in res:
        d.p("Not run in this session (`build/bench/bench_heart privacy-global`).", "")
        return
    st = res["settings"]
    g = st["grid"]
    fx = st["fixed_scaling"]
    d.p(f"Command: `{res['command']}` (seeds {res['seeds'][0]}–{res['seeds'][-1]}). "
        f"Path: {res['engine']}. Federated rounds with {st['local_epochs']} local epoch per "
        f"round; {st['dp']}, δ = {st['delta']:g}; the site enforces ε as its budget (ε = ∞: "
        f"no DP, plain SGD with batch B; C unused). One global model for the four hospitals, scored as is on each "
        f"hospital's test rows; the personalised column fine-tunes that same model locally "
        f"(k = 100 full-batch steps, lr 0.05, fixed in advance: no privacy cost). Mean ± std "
        f"over seeds of the mean of the four hospitals.", "")
    d.p("**Feature scaling** (the change that matters): *site* = each hospital standardises "
        "with its own training rows' mean and std (the data module's default, FLamby's "
        "setup, §4 above; data-dependent and not covered by ε); *fixed* = one public affine "
        "map for every hospital, (x − centre) / scale with centre "
        f"[{', '.join(f'{x:g}' for x in fx['center'])}] and scale "
        f"[{', '.join(f'{x:g}' for x in fx['scale'])}] (round typical adult values, written "
        "without looking at the rows; `data.standardize: fixed` in a site config, "
        "docs/PRIVACY.md), so the whole pipeline is under ε; *pooled* = the pooled training "
        "rows' statistics (a reference only: it needs statistics no hospital may share).", "")
    d.p(f"**How the recipe is chosen (no test rows):** {st['selection']}. Grid: model "
        f"{' / '.join(g['models'])} × server {' / '.join(g['server'])} (FedAvg, or FedAdam on "
        f"the noised Δs) × local lr {' / '.join(f'{x:g}' for x in g['lr'])} × expected batch B "
        f"{' / '.join(str(x) for x in g['batch'])} (q = B/N) × clip C "
        f"{' / '.join(f'{x:g}' for x in g['clip'])} × rounds "
        f"{' / '.join(str(x) for x in g['rounds'])}; σ is recalibrated for every (q, steps) so "
        f"every recipe spends exactly ε. The selection runs are not counted in ε (as in §4).", "")
    names = ["Cleveland", "Hungary", "Switzerland", "VA"]
    glob_rows = [r for r in res["rows"] if " global " in r["name"]]
    pers = {r["name"].replace(" personalised ", " global "): r for r in res["rows"]
            if " personalised " in r["name"]}
    rows = []
    for r in glob_rows:
        eps = "∞" if r["epsilon"] is None else f"{r['epsilon']:g}"
        p = pers.get(r["name"])
        rows.append([eps, r["scaling"], f"{r['mean4']:.3f} ± {r['mean4_std']:.3f}"]
                    + [f"{m:.3f}" for m in r["site_mean"]]
                    + [f"{p['mean4']:.3f} ± {p['mean4_std']:.3f}" if p else "–",
                       f"`{r['recipe']}`", f"{r['validation_acc']:.3f}"])
    d.table(["ε", "scaling", "global mean4"] + names
            + ["personalised (k = 100)", "recipe chosen by CV", "CV acc."], rows)
    orc = res.get("oracle_no_dp", {})
    if orc:
        d.p("Ceiling without DP (an ORACLE: the best test mean4 over the whole grid, seeds as "
            "above; evidence of what any selection could reach, not a result): "
            + "; ".join(f"{k} scaling {v['mean4']:.3f} (`{v['recipe']}`)"
                        for k, v in orc.items()) + ".", "")
    d.p("**What else was tried, and what each gave** (one exploration at ε = 1, fixed "
        "scaling, 216 recipes, 4-fold CV with one seed per fold, validation rows only; "
        "`PG_EXPLORE=1 PG_EPS=1 PG_SCALING=fixed build/bench/bench_heart privacy-global`, "
        "log in bench/results/heart_privacy_global_explore_eps1.log, 2026-12-06, shared "
        "machine): *model*: linear best CV 0.789 (grid mean 0.700), MLP 13-32-1 best 0.767 "
        "(mean 0.668): the 481 parameters of the MLP take more noise than they give back at "
        "this ε; *server optimiser*: FedAdam (rate 0.05) on the noised Δs best 0.789 and mean "
        "CV loss 0.66, FedAvg (sgd 1) best 0.783 but mean CV loss 1.52 (several of its "
        "recipes blow up under the noise): Adam's per-coordinate normalisation is the more "
        "forgiving rule; *rounds*: linear recipes average 0.623 at R = 5, 0.735 at 15, 0.742 "
        "at 30; fewer, larger noisy steps did not win on their own (the best R = 5 recipe, "
        "lr 1 B 64, reached 0.780, close to the best 0.789 but no better); *batch / q*: B 16 / "
        "32 / 64 averaged 0.684 / 0.686 / 0.682, i.e. with σ recalibrated for every (q, steps) "
        "the sampling rate hardly matters here; *clip*: C 1 averaged 0.689, C 0.5 0.679; "
        "*lr*: 0.1 averaged 0.663, 0.3 0.697, 1 0.692. The table's grid keeps the two models, "
        "both server rules, both clips and two of the three values of lr (0.3, 1), B (32, 64) "
        "and R (15, 30). The exploration's two "
        "picks scored on the test rows once (5 seeds): by CV accuracy (linear, lr 0.3, B 16, "
        "C 1, 30 rounds, FedAdam) 0.809 ± 0.022, by CV loss (same with B 32) 0.814 ± 0.014. "
        "With the site's own statistics instead, the same grid's pick at ε = 1 is the "
        "table's *site* row.", "")
    if PRIVACY_GLOBAL_SEEDS10:
        v = PRIVACY_GLOBAL_SEEDS10
        mean = sum(v) / len(v)
        sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5
        d.p(f"**Seed by seed at ε = 1** (the table's ε = 1 recipe, not re-chosen, trained "
            f"with {len(v)} seeds, 42–{41 + len(v)}; `PG_STABILITY=1 PG_GRID=18 "
            f"build/bench/bench_heart privacy-global --seeds {len(v)}`): mean4 per seed "
            + ", ".join(f"{x:.3f}" for x in v)
            + f"; mean {mean:.3f} ± {sd:.3f}, {sum(x > 0.706 for x in v)} of {len(v)} seeds above "
            f".706. The DP noise of one training run moves a seed by several points (mostly "
            f"Switzerland's 16 and VA's 45 test rows).", "")
    if PRIVACY_GLOBAL_STABILITY:
        d.p("**Stability of the pick** (`PG_STABILITY=3 PG_STABILITY_FROM=1 "
            "build/bench/bench_heart privacy-global`: the ε = 1 fixed-scaling selection redone "
            "with a new fold split and new training seeds each time; repeat 0 is the table's "
            "row): " + "; ".join(f"repeat {i}: `{rc}` (CV {cv:.3f}) → test {m:.3f} ± {sd:.3f}"
                                 for i, rc, cv, m, sd in PRIVACY_GLOBAL_STABILITY)
            + ". The selection rule averages each candidate over 4 folds and gives the best "
            "6 two more seeds per fold (12 runs for a finalist, against 2 in §4), so the "
            "pick moves only among near-equal recipes (always linear, lr 0.3, C 0.5–1, "
            "15–30 rounds, FedAdam or FedAvg); what remains is the spread of the DP training "
            "itself, seed to seed.", "")
    if PRIVACY_GLOBAL_ALT_SCALE:
        m, sd = PRIVACY_GLOBAL_ALT_SCALE
        r1 = [r for r in glob_rows if r["epsilon"] == 1 and r["scaling"] == "fixed"]
        ref = (f"{r1[0]['mean4']:.3f} ± {r1[0]['mean4_std']:.3f} in the table"
               if r1 else "the table's row")
        d.p("**Is it these constants?** The ε = 1 recipe above with a second, cruder public "
            "scaling (no centring; age / 100, blood pressure / 200, cholesterol / 500, heart "
            "rate / 200, ST depression / 5; `PG_ALT_SCALE=1 PG_STABILITY=1 PG_GRID=18 "
            f"build/bench/bench_heart privacy-global`; the recipe was not re-chosen for it): "
            f"{m:.3f} ± {sd:.3f}, against {ref} with the centred constants: what carries the "
            "gain is one data-independent scale shared by all hospitals, not a tuned set of "
            "numbers.", "")
    by = {(r["epsilon"], r["scaling"]): r["mean4"] for r in glob_rows}
    fixed_dp = {e: v for (e, sc), v in by.items() if sc == "fixed" and e is not None}
    if fixed_dp:
        low = min(fixed_dp.values())
        d.p(f"Against FLamby's DP example (FedAvg, one global model, .685–.706 at ε = 1): with "
            f"the public fixed scaling the global model is "
            f"{'above' if low > 0.706 else 'NOT above'} that range at every ε of the table "
            f"(lowest {low:.3f}); with each site's own statistics it is "
            f"{by.get((1, 'site'), float('nan')):.3f} at ε = 1 and "
            f"{by.get((None, 'site'), float('nan')):.3f} without DP, FLamby's level.", "")


def privacy_global_eps1(pg):
    """The ε = 1 global model with public fixed scaling from heart_privacy_global, or None."""
    if not pg or "_error" in pg:
        return None
    for r in pg.get("rows", []):
        if r.get("epsilon") == 1 and r.get("scaling") == "fixed" and " global " in r["name"]:
            return r
    return None


def heart_privacy_section(d, res, pg=None):
    """Quality under record-level DP on the UCI heart hospitals (issue 11 item 9)."""
    d.p("## 4. Quality under privacy (UCI heart, record-level DP-SGD)", "")
    if not res or "_error" in res:
        d.p("Not run in this session (`build/bench/bench_heart privacy`).", "")
        return
    st = res["settings"]
    sel = st["selection"]

    def rec(r):
        return (f"`{r['model']}` lr {r['lr']:g} B {r['batch']} "
                + (f"C {r['clip']:g} " if r.get("clip") is not None else "")
                + f"{r['rounds']} rounds")

    d.p(f"Command: `{res['command']}` (seeds {res['seeds'][0]}–{res['seeds'][-1]}). "
        f"Path: {res['engine']}. Every hospital trains {st['algo']} ({st['local_epochs']} "
        f"local epoch per round, server {st['server']}) with {st['dp']}, δ = "
        f"{st['delta']:g}; its policy's budget is ε, which the site enforces (a round past it "
        f"would be declined). ε = ∞: no DP (plain SGD, batch B). Global = the federated "
        f"model as is; personalised = k local fine-tuning steps (lr {st['fine_tune_lr']:g}) "
        f"on the hospital's training rows (local, never sent: no privacy cost). Accuracy on "
        f"each hospital's held-out (test) rows, mean ± std over seeds; mean4 = mean of the "
        f"four hospitals.", "")
    d.p("**How the recipe is chosen (no test rows):** "
        f"validation = {sel['validation']}. At each ε, every recipe of the grid "
        f"(model {' / '.join(sel['models'])} × lr {' / '.join(f'{x:g}' for x in sel['lr'])} × "
        f"expected batch B {' / '.join(str(x) for x in sel['batch'])} × clip C "
        f"{' / '.join(f'{x:g}' for x in sel['clip'])} × rounds "
        f"{' / '.join(str(x) for x in sel['rounds'])}) is trained on the other rows under the "
        f"same ε (σ calibrated for their N) with {sel['seeds']} seeds and scored on the "
        f"validation rows; the global rows use the recipe with the best mean validation "
        f"accuracy as is, the personalised rows the (recipe, k ∈ "
        f"{{{', '.join(str(k) for k in sel['fine_tune_steps'])}}}) with the best validation "
        f"accuracy after fine-tuning, leave-one-out the recipe with the best global validation "
        f"accuracy on the three training hospitals only. The chosen recipe is then trained on "
        f"all training rows (σ recalibrated for them) with the seeds above and scored once on "
        f"the test rows. The selection runs are not counted in ε (see docs/PRIVACY.md, "
        f"\"Choosing hyper-parameters\").", "")
    names = ["Cleveland", "Hungary", "Switzerland", "VA"]
    rows = []
    for r in res["rows"]:
        if r["kind"] == "loho":
            continue
        eps = "∞" if r["epsilon"] is None else f"{r['epsilon']:g}"
        k = f", k = {r['fine_tune_steps']}" if r["kind"] == "personalised" else ""
        rows.append([eps, r["kind"], f"{r['mean4']:.3f} ± {r['mean4_std']:.3f}"]
                    + [f"{m:.3f}" for m in r["site_mean"]]
                    + [rec(dict(r["recipe"], clip=None if r["epsilon"] is None
                                else r["recipe"]["clip"])) + k,
                       f"{r['validation_acc']:.3f}",
                       "–" if r["epsilon"] is None else
                       ", ".join(f"{x:.2f}" for x in r["sigma"]),
                       "–" if r["epsilon"] is None else
                       f"{max(r['epsilon_spent']):.3f}"])
    d.table(["ε", "model", "mean4"] + names
            + ["recipe chosen on validation", "val. acc", "σ per site", "max ε spent"], rows)
    maj = res.get("majority")
    if maj:
        d.p("Majority-class accuracy of the held-out rows, per site: "
            + ", ".join(f"{n} {m:.3f}" for n, m in zip(names, maj))
            + f" (mean {sum(maj) / len(maj):.3f}). The DP noise and samples come from a "
            "CSPRNG, so reruns differ (and so may the recipe chosen, where two are close on "
            "the validation rows). ε = 0.1 (FLamby's other point, at δ = 1e-4) is not in the "
            "table: at δ = 1e-5 Opacus's default orders cannot certify any ε below ≈ 0.103, "
            "whatever σ.", "")
    by = {(r["epsilon"], r["kind"]): r["mean4"] for r in res["rows"]}
    g1, p1, pinf = by.get((1, "global")), by.get((1, "personalised")), by.get((None, "personalised"))
    ginf = by.get((None, "global"))
    if None not in (p1, g1, pinf, ginf):
        under = [f"{e:g}" for (e, k), v in sorted(by.items(), key=lambda x: (x[0][0] is None,
                                                                             x[0][0] or 0))
                 if k == "global" and e is not None and v <= 0.706]
        pmin = min(v for (e, k), v in by.items() if k == "personalised" and e is not None)
        d.p(f"Against FLamby's DP example (FedAvg, one global model, .685–.706 at ε = 1): the "
            f"personalised model is {'above' if pmin > 0.706 else 'NOT above'} it at every ε "
            f"of the table (lowest {pmin:.3f}; {p1:.3f} at ε = 1, {pinf:.3f} without DP). "
            f"One global model for the four hospitals stays near the "
            f"majority-class level with or without DP ({ginf:.3f} without DP, {g1:.3f} at "
            f"ε = 1), as in FLamby; it is not above FLamby's range at ε = "
            f"{', '.join(under) if under else '–'}. The seed-to-seed spread of the DP runs is "
            f"as large as the differences between the best recipes, so the choice on "
            f"validation rows is noisy for the global model. Before this selection (one fixed "
            f"recipe: linear FedAvg, 30 rounds, lr 0.05, q = 16/N, clip 1, k = 10) the same "
            f"bench gave at ε = 1 global .698, personalised .704, leave-one-out .731. "
            f"These rows scale each hospital's features with its own training-row statistics; "
            f"§4b gives the global model one public scaling for all hospitals instead.", "")
    pg1 = privacy_global_eps1(pg)
    if p1 is not None:
        gbest = max(g1, pg1["mean4"]) if pg1 else g1
        gtxt = (f"global {pg1['mean4']:.3f} ± {pg1['mean4_std']:.3f} with public fixed scaling "
                f"(§4b; {g1:.3f} with each site's own statistics)" if pg1
                else f"global {g1:.3f}")
        spread = (pg1 is not None and pg1["mean4"] > 0.706
                  and pg1["mean4"] - pg1["mean4_std"] <= 0.706)
        d.goals.append(("4 heart, ε = 1 (record DP)", "above FLamby's DP .685–.706",
                        f"personalised {p1:.3f}, {gtxt}",
                        ("met (personalised and global"
                         + ("; the global model on the mean over seeds, not on every seed: "
                            + (f"{sum(x > 0.706 for x in PRIVACY_GLOBAL_SEEDS10)} of "
                               f"{len(PRIVACY_GLOBAL_SEEDS10)} seeds above .706, "
                               if PRIVACY_GLOBAL_SEEDS10 else "")
                            + "see §4b)" if spread else ")") if gbest > 0.706 else
                         "met for the personalised model; the global model is not above it")
                        if p1 > 0.706 else "NOT MET"))
    if p1 is not None and pinf is not None:
        d.goals.append(("4 heart, ε = 1 personalised vs no DP", "within 5 points",
                        f"{p1:.3f} vs {pinf:.3f}", "met" if pinf - p1 <= 0.05 else "NOT MET"))
    loho = [r for r in res["rows"] if r["kind"] == "loho"]
    if loho:
        d.p(f"Leave-one-hospital-out under DP: the recipe chosen on the other three hospitals' "
            f"validation rows, trained under DP on those three, then the held-out hospital adapts "
            f"the model on k = 10 labelled cases of its own (100 steps, lr "
            f"{st['fine_tune_lr']:g}; {loho[0]['draws']} drawn sets per seed) and is scored on "
            f"its held-out rows (the column is the held-out hospital).", "")
        d.table(["ε", "mean4"] + names + ["recipes (held out: C / H / S / V)"],
                [["∞" if r["epsilon"] is None else f"{r['epsilon']:g}",
                  f"{r['mean4']:.3f} ± {r['mean4_std']:.3f}"]
                 + [f"{m:.3f}" for m in r["site_mean"]]
                 + ["; ".join(f"{x['model'].split(':')[0]} lr {x['lr']:g} B {x['batch']}"
                              + ("" if r["epsilon"] is None else f" C {x['clip']:g}")
                              + f" R {x['rounds']}" for x in r["recipes"])]
                 for r in loho])


def scale_sites_section(d, res, engine):
    """2(c), many sites: bench/scale_sites.sh (one coordinator, N real agents,
    several small P). The per-site growth is split into what an idle
    connection costs and what a round adds; `engine` (rounds_engine.json)
    gives the same growth at P = 1M and 10M. Memory counts as O(P) when a
    site adds at most 0.1 × 4·P at the largest P measured (a queued Δ per
    site would be ≈ 1), so the verdict comes from the numbers."""
    d.p("### 2(c) Many sites: one coordinator, up to 256 site agents", "")
    if "_error" in res:
        d.p(f"Not measured: {res['_error']}.", "")
        d.goals.append(("2(c) scale: 256 sites", "all updates accepted", "not measured",
                        "NOT MEASURED"))
        return
    rows = sorted(res.get("rows", []), key=lambda r: (r["params"], r["sites"]))
    d.p(f"{res.get('how', '')} Command: `{res.get('command', '')}` ({res.get('date', '')}; "
        f"`ulimit -n` {res.get('ulimit_n', '?')}; load average before "
        f"{res.get('loadavg_start', '?')}, after {res.get('loadavg_end', '?')} on 2 shared "
        "cores).", "")
    if res.get("failures"):
        d.p("Failures: " + "; ".join(res["failures"]) + ".", "")

    def f1(v, nd=1):
        return "–" if v is None else f"{v:.{nd}f}"

    def mib(kb):
        return f1(kb / 1024) if kb else "–"

    d.table(["P", "N", "coordinator peak RSS MiB", "RSS / (4·P)",
             "peak: kB per site above the smallest N", "that / (4·P)",
             "RSS with N idle connections MiB", "idle: kB per site",
             "all N connected after s", "median round ms", "rounds with all N accepted",
             "agents exit 0", "one agent's peak RSS MiB"],
            [[f"{r['params']:,}", r["sites"], mib(r.get("coordinator_rss_kb")),
              f1(r.get("rss_over_4p")), f1(r.get("kb_per_extra_site")),
              f1(r["kb_per_extra_site"] * 1024 / (4 * r["params"]), 2)
              if r.get("kb_per_extra_site") is not None else "–",
              mib(r.get("coordinator_rss_connected_kb")),
              f1(r.get("connected_kb_per_extra_site")),
              f1(r.get("connect_s"), 2), f1(r.get("median_round_ms"), 0),
              f"{sum(1 for a in r.get('accepted', []) if a == r['sites'])}"
              f"/{r.get('rounds_closed', 0)}",
              f"{r.get('agents_exit_0', 0)}/{r['sites']}", mib(r.get("agent_rss_kb"))]
             for r in rows])
    # per P: the growth per site at the largest N, and an idle connection's
    pts = []
    for p_ in sorted({r["params"] for r in rows}):
        rs = [r for r in rows if r["params"] == p_ and r.get("kb_per_extra_site") is not None]
        if rs:
            top = max(rs, key=lambda r: r["sites"])
            pts.append((4 * p_ / 1024, top["kb_per_extra_site"], p_,
                        top.get("connected_kb_per_extra_site")))
    ok = bool(rows) and all(r.get("all_accepted") for r in rows)
    maxn = max((r["sites"] for r in rows), default=0)
    text = []
    if pts:
        text.append("At the round peak each extra site costs the coordinator (growth of the "
                    "peak per site up to the largest N of each P): "
                    + ", ".join(f"P = {p_:,}: {y:.0f} kB"
                                + (f" (of which an idle connection {c:.0f} kB)"
                                   if c is not None else "")
                                for _, y, p_, c in pts) + ".")
    # P = 1M and 10M: the same growth from the rounds_engine rows (no training)
    big = []
    if isinstance(engine, dict) and "_error" not in engine:
        for p_ in sorted({r["params"] for r in engine.get("rows", [])}):
            rs = [r for r in engine["rows"] if r["params"] == p_ and not r.get("training")
                  and r.get("run_dir") != "tmpfs" and r.get("coordinator_rss_kb")]
            if len(rs) >= 2 and p_ >= 999987:
                # growth between the two largest N: below them N is near the
                # W concurrent uploads the gate allows anyway
                rs.sort(key=lambda r: r["sites"])
                lo, hi = rs[-2], rs[-1]
                if hi["sites"] > lo["sites"]:
                    per_kb = (hi["coordinator_rss_kb"] - lo["coordinator_rss_kb"]) \
                        / (hi["sites"] - lo["sites"])
                    big.append((p_, lo, hi, per_kb, per_kb * 1024 / (4 * p_), rs))
    if big:
        text.append("With large models (the rounds_engine rows of 2(a), same daemons): "
                    + "; ".join(f"P = {p_:,}: peak "
                                + ", ".join(f"{r['coordinator_rss_kb'] / 1024:.0f} MiB at "
                                            f"N = {r['sites']}" for r in rs)
                                + f" ({per:.0f} kB per extra site from N = {lo['sites']} to "
                                f"{hi['sites']} = {frac:.3f} × 4·P; all of N = "
                                f"{rs[0]['sites']} → {hi['sites']} adds "
                                f"{(hi['coordinator_rss_kb'] - rs[0]['coordinator_rss_kb']) * 1024 / (4 * p_):.2f}"
                                f" × 4·P in total; peak / (4·P) = "
                                f"{hi['coordinator_rss_kb'] * 1024 / (4 * p_):.1f})"
                                for p_, lo, hi, per, frac, rs in big) + ". Peak RSS moves "
                    "by up to about one Δ between runs and between N because glibc's heap "
                    "arenas keep freed ZeroMQ frames resident (a fixed 512 KiB mmap "
                    "threshold held 10M at 275 MiB for N = 4 and 8, but cost 20 ms of "
                    "coordinator CPU per 1M round and was reverted: docs/PERFORMANCE.md).")
    # Memory is O(P) when what a site adds does not scale with P: judged at
    # the largest P measured, where a per-site Δ would dominate.
    if big:
        worst_p, worst_frac = big[-1][0], big[-1][4]
        worst_ns = (big[-1][1]["sites"], big[-1][2]["sites"])
    elif pts:
        worst_p = pts[-1][2]
        worst_frac = pts[-1][1] * 1024 / (4 * worst_p)
        worst_ns = None
    else:
        worst_p, worst_frac, worst_ns = 0, None, None
    mem_ok = worst_frac is not None and worst_frac <= 0.1
    text.append("What bounds it: upload flow control (at most `rounds.max_concurrent_uploads` "
                "sites, default 2, send a Δ larger than 64 KiB at once, after an UploadGrant; "
                "ZeroMQ buffers each incoming message whole) and θ broadcast in 64 KiB frames "
                "(CurveZMQ keeps one encrypted copy of each outgoing frame per connection "
                "until the peer has read it), so a connection holds a fixed ≈ 40 kB plus "
                "about one 64 KiB frame whatever P is. The rest is O(P): θ, the broadcast "
                "snapshot, the int64 running sum (2 × 4·P), one decoded Δ and the W granted "
                "Δs arriving (docs/PERFORMANCE.md, \"Upload flow control\" and "
                "\"Coordinator memory at its peak\"). Before those changes each site added "
                "about one Δ (1.0–1.16 × 4·P) at the peak.")
    text.append("Round time grows about linearly in N here because all N agents share 2 "
                "cores with the coordinator (each does a local step and an Ed25519 "
                "signature, the coordinator verifies N signatures and hashes); the connect "
                "time is mostly process start-up, in batches.")
    d.p(" ".join(text), "")
    measured = ("every round accepted all N" if ok else "some rounds missed sites")
    if worst_frac is not None:
        measured += (f"; per extra site {worst_frac:.3f} × 4·P at P = {worst_p:,}"
                     + (f" (N = {worst_ns[0]} → {worst_ns[1]})" if worst_ns else ""))
    d.goals.append((f"2(c) scale: one coordinator, {maxn} site agents",
                    "all served; peak memory O(P)", measured,
                    ("met (peak RSS also moves by up to ≈ one Δ with glibc's arenas, see 2(c))"
                     if mem_ok else "served: met; memory O(P): NOT MET (see 2(c))")
                    if ok else "NOT MET (see 2(c))"))

# ---- others' results ---------------------------------------------------------

def _cell(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def _table_of_dicts(d, rows):
    keys = []
    for r in rows:
        for k, v in r.items():
            if k not in keys and not isinstance(v, dict) and not (
                    isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v)):
                keys.append(k)
    keys = keys[:12]
    d.table(keys, [[_cell(r.get(k, "")) for k in keys] for r in rows[:60]])


def flower_ref_section(d, res):
    """Issue 17: the same-run Flower-like reference (bench/flower_ref.sh):
    what it does and omits, and its rows when bench/results/flower_ref.json
    is there."""
    d.p("**A same-run reference (`bench/flower_ref.sh`).** The tables above hold today's "
        "metafl against Flower figures taken months ago, and the machine has moved since "
        "(the raw CURVE floor, same code, 1.7–2.9× slower at N ≥ 4), so a ratio against "
        "those stale figures is not a fair test. The fair test is a reference measured in "
        "the same run: `bash bench/flower_ref.sh OUT.json` (env FLREF_SIZES, FLREF_N, "
        "FLREF_R, FLREF_REPS, FLREF_BLAS_THREADS, METAFL_BUILD; `--help`; needs Debian's "
        "python3-grpcio and python3-numpy under /usr/bin/python3, installed by "
        "deploy/install-deps.sh for the bench only, and stops at once naming them if "
        "they are missing). For each point (P ∈ {2,242; 999,987}, N ∈ {4, 8}) and "
        "repetition it runs the reference, then `bench/rounds_engine.sh`'s training row "
        "with fp32, then with int8 upload + int8 broadcast (medians over rounds 2..R), and "
        "prints speed-up = reference ms / metafl ms with each run's 1-minute load.", "")
    d.p("The reference (`bench/flower_ref/`, written for this bench, no Flower code) is a "
        "minimal Flower-like FedAvg round in Python: a gRPC server without TLS and N "
        "client processes, each holding one bidirectional stream as Flower 1.x clients "
        "do; each round the server frames the model (every tensor as numpy `.npy` bytes, "
        "as Flower serialises them) and sends it to every client; each client trains one "
        "epoch over its 200 rows (batch 32; numpy MLP 32-64-2 or 32-28571-2, ReLU, "
        "softmax cross-entropy, SGD at 0.01, one OpenBLAS thread per process) and returns "
        "its tensors, row count and loss; the server decodes the replies and takes the "
        "row-weighted mean (FedAvg). Its round runs from framing the model to the averaged "
        "model in hand. It omits Flower's own framework work (strategy objects, Parameters "
        "conversions, the client manager and client proxies, its driver, protobuf "
        "messages, history and metrics aggregation) and frames the model once per round, "
        "so it is a **lower bound** on Flower's round time on the same machine, and a "
        "ratio against it **under-states** metafl's speed-up against Flower. What it cannot "
        "bound is a Flower client whose training library is faster than numpy for this "
        "MLP (the numpy epoch at 1M takes 36–54 ms CPU on the shared machine, the same "
        "order as metafl's C epoch).", "")
    rows = (res or {}).get("rows") or []
    if not rows or "_error" in (res or {}):
        d.p("No same-run reference in this run: the quiet-machine numbers are the lead's "
            "(`bash bench/flower_ref.sh bench/results/flower_ref.json`).", "")
        return
    d.table(["P", "N", "rep", "reference ms", "metafl fp32 ms", "speed-up fp32",
             "metafl int8 ms", "speed-up int8", "load (ref / fp32 / int8)"],
            [[f"{r['params']:,}", r["sites"], r["rep"], fmt(r.get("reference_ms"), 1),
              fmt(r.get("metafl_fp32_ms"), 1), fmt(r.get("speedup_fp32"), 2),
              fmt(r.get("metafl_int8_ms"), 1), fmt(r.get("speedup_int8"), 2),
              " / ".join(fmt(x, 1) for x in r.get("loadavg_1m") or [])] for r in rows])


def compression_section(d, res, flref=None):
    """Issue 17: fp32 / fp16 / int8 uploads (bench/compression.sh), and the
    issue's side-by-side Flower table kept as the reference, followed by the
    same-run reference (flower_ref_section)."""
    d.p("### 2(d) Compressed updates and the Flower reference (issue 17)", "")
    d.p("Flower is not installable on this machine (no Debian package; only Debian's and "
        "npm's registries are reachable), so Flower cannot be re-measured here. The table "
        "issue 17 measured side by side in one run (2 cores, Flower 1.6 over gRPC without "
        "TLS, FedAvg, 200 rows per site, one epoch, batch 32; metafl with CURVE, "
        "signatures, audit and checkpoints; two alternating repetitions) is the reference "
        "the goal (≥ 3× Flower at every point) is held against:", "")
    d.table(["P", "N", "metafl ms", "Flower ms", "speed-up"],
            [[a, b, c, e, f] for a, b, c, e, f in FLOWER_SIDE_BY_SIDE])
    flower_ref_section(d, flref)
    if not res or "_error" in res:
        d.p("No compression results in this run (`bash bench/compression.sh "
            "bench/results/compression.json`).", "")
        return
    d.p(f"Compressed uploads: `{res.get('command', '')}` ({res.get('date', '?')}). "
        + res.get("how", ""), "")
    heart = res.get("heart_mean_accuracy") or {}
    if heart:
        encs = list(heart)
        names = [n for n in heart[encs[0]] if "local" not in n and "pooled" not in n]
        d.p("Heart (FLamby split, mean accuracy of the 4 hospitals, mean over seeds; "
            "the round-engine row runs float32 whatever the encoding):", "")
        d.table(["row"] + encs,
                [[n] + [fmt(heart[e].get(n)) for e in encs] for n in names])
    rows = res.get("rows") or []
    if rows:
        d.p("Real daemons per encoding (ratio = open-to-open median / CURVE floor for the "
            "fp32 bytes of the same P and N, measured right after; CPU = all processes per "
            "round; accuracy = the final evaluation's mean adapted accuracy; load = the "
            "1-minute load average at the row's end):", "")
        d.table(["row", "encoding", "P", "N", "bytes per update", "metafl ms",
                 "floor ms (fp32)", "ratio", "CPU ms (coord / sites / total)", "eval accuracy",
                 "load"],
                [[r["label"], r.get("encoding", "fp32"), f"{r['params']:,}", r["sites"],
                  f"{r.get('update_bytes', 4 * r['params']):,}", fmt(r["median_ms"], 1),
                  fmt(r.get("floor_ms"), 2), fmt(r.get("ratio_to_fp32_floor"), 2),
                  f"{r.get('cpu_coord_ms')} / {r.get('cpu_sites_ms')} / {r.get('cpu_total_ms')}",
                  fmt(r.get("eval_accuracy")), r.get("loadavg_1m")] for r in rows])
        loads = [r["loadavg_1m"] for r in rows if isinstance(r.get("loadavg_1m"), (int, float))]
        if loads and max(loads) > 2:
            d.p(f"The machine was shared while this ran (load {min(loads):.0f}–{max(loads):.0f} "
                "on 2 cores): the wall-clock columns are not comparable with §2(a)–(b) and "
                "even CPU per operation rises under that load (BLAKE2b of 4 MB: 6.5 ms against "
                "3.8 ms quiet); read the CPU and accuracy columns, and re-measure on a quiet "
                "machine for the ratios.", "")
    d.p("**Encoders and durable writes (issue 17, third session).** The fp16 / int8 "
        "encoders and the fp16 decoder run in vectorised blocks with the same bytes "
        "(`build/bench/bench_quant`, `quant.json` below: 1M values, fp16 encode 11–14 → "
        "5.3 ms, decode 1.7–1.9 → 0.5 ms, int8 encode 4.8–7.2 → 4.5 ms CPU at load ≈ 20), "
        "and each site syncs its audit log once per round instead of twice. CPU per 1M, "
        "N = 4 round in an A/B of `bench/grid.sh` on the shared machine (load 17–25): fp16 "
        "229–240 → 156–170 ms, fp32 and int8 within the tick noise. Commands, the "
        "per-write table and the numbers: `PERFORMANCE.md`, \"Durable writes and "
        "encoders\". Rows measured before 2026-12-06 07:40 UTC predate these changes.", "")


def generic_section(d, name, res):
    """Renders another engineer's result file: its scalars as a key/value
    table, every list of objects as its own table, nested objects of
    scalars as key/value tables; anything else as (truncated) JSON."""
    d.p(f"### {name}", "")
    if isinstance(res, dict) and "_error" in res:
        d.p(f"Could not read: {res['_error']}.", "")
        return
    if not isinstance(res, dict):
        res = {"rows": res}
    scalars = [(k, v) for k, v in res.items()
               if not isinstance(v, (dict, list)) or
               (isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v))]
    if scalars:
        d.table(["key", "value"], [[k, _cell(v)] for k, v in scalars])
    for k, v in res.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            d.p(f"`{k}`:", "")
            _table_of_dicts(d, v)
        elif isinstance(v, dict):
            if all(not isinstance(x, (dict, list)) for x in v.values()):
                d.p(f"`{k}`:", "")
                d.table(["key", "value"], [[kk, _cell(vv)] for kk, vv in v.items()])
            else:
                text = json.dumps(v, indent=1)
                if len(text) > 2000:
                    text = text[:2000] + "\n... (truncated)"
                d.p(f"`{k}`:", "", "```json", text, "```", "")


def _select_tables(d, res, res_split, res_wdbc, label):
    for r_, title in ((res, "FLamby split (flamby-split.json)"),
                      (res_split, "a split nobody tuned on (`--split 7`: each hospital's "
                                  "rows re-split 66/34, stratified)")):
        if not r_ or "_error" in r_:
            d.p(f"{title}, {label}: not run.", "")
            continue
        d.p(f"**{title}, {label}**, `{r_['command']}`; winners per seed: "
            + "; ".join(f"{w['candidate']} ({w['setting']})" for w in r_["winners"]), "")
        d.table(["", "mean4"] + SITES,
                [[r["name"], f"{r['mean4']:.4f} ± {r['mean4_std']:.4f}"]
                 + [f"{m:.3f} ± {s_:.3f}" for m, s_ in zip(r["site_mean"], r["site_std"])]
                 for r in r_["rows"]])
    if res_wdbc and "_error" not in res_wdbc:
        d.p(f"**WDBC, the demo's four training hospitals, {label}** (60/40 split of `make "
            f"demo`), `{res_wdbc['command']}` (`metafl simulate`, the same defaults with "
            "model mlp:30-32-1; seeds " + ", ".join(res_wdbc["seeds"]) + "); winners per "
            "seed: " + "; ".join(str(w) for w in res_wdbc["winners"]), "")
        d.table(["", "mean4"] + res_wdbc["sites"],
                [[r["name"], f"{r['mean4']:.4f} ± {r['mean4_std']:.4f}"]
                 + [f"{m:.3f} ± {s_:.3f}" for m, s_ in zip(r["site_mean"], r["site_std"])]
                 for r in res_wdbc["rows"]])


def select_fed_section(d, res, res_split, res_wdbc, res_site, res_site_split, res_wdbc_site):
    """Federated standardisation, chosen by selection (issue 16, item 3 again)."""
    if not res or "_error" in res:
        return None
    d.p("### Federated standardisation (`data.standardize: federated`)", "")
    d.p("The same selection with the coordinator's `data.standardize: federated` "
        "(docs/DATA.md): before anything else each hospital sends the count, per-feature "
        "sums and sums of squares of its fit rows (training rows minus the validation "
        "part), the coordinator pools them into one mean and scale per feature and every "
        "task carries it; the default grid then has 11 candidates, the 10 above with the "
        "pooled scaling and the configured setting with each site's own, and validation "
        "picks among them. Nothing else changes: the same defaults, grid rule, rounds, "
        "seeds and test rows; FedAvg + FT uses the pooled scaling too (its rows with each "
        "site's own scaling are in the tables above). In leave-one-hospital-out the pool "
        "is the three training hospitals' fit rows and the new hospital scales with it.", "")
    _select_tables(d, res, res_split, res_wdbc, "federated standardisation")
    by = {r["name"]: r for r in res["rows"]}
    site_by = {r["name"]: r for r in res_site["rows"]} if res_site and "_error" not in \
        res_site else {}
    ps = by["selection + per-site adaptation"]
    lcv = by.get("LOHO k=10, the new hospital chooses by CV on its 10 cases")
    n_fed = sum("scaling federated" in w["setting"] for w in res["winners"])
    n_lfed = sum("scaling federated" in w for w in res.get("loho_winners", []))
    txt = (f"What it gave: on the FLamby split selection + per-site adaptation reaches "
           f"{ps['mean4']:.4f} ± {ps['mean4_std']:.4f}")
    if "selection + per-site adaptation" in site_by:
        o = site_by["selection + per-site adaptation"]
        txt += f" (each site's own scaling: {o['mean4']:.4f} ± {o['mean4_std']:.4f})"
    if lcv:
        txt += (f", and the new hospital of leave-one-hospital-out, choosing its adaptation "
                f"on its 10 cases, {lcv['mean4']:.4f} ± {lcv['mean4_std']:.4f}")
        if "LOHO k=10, the new hospital chooses by CV on its 10 cases" in site_by:
            o = site_by["LOHO k=10, the new hospital chooses by CV on its 10 cases"]
            txt += f" (own scaling: {o['mean4']:.4f} ± {o['mean4_std']:.4f})"
    txt += (f". Validation chose the pooled scaling in {n_fed} of {len(res['winners'])} "
            f"seeds and in {n_lfed} of {len(res.get('loho_winners', []))} "
            "leave-one-out runs. ")
    if res_split and "_error" not in res_split and res_site_split:
        a = {r["name"]: r for r in res_split["rows"]}["selection + per-site adaptation"]
        b = {r["name"]: r for r in res_site_split["rows"]}["selection + per-site adaptation"]
        txt += (f"On the untuned re-split {a['mean4']:.4f} ± {a['mean4_std']:.4f} (own "
                f"scaling {b['mean4']:.4f} ± {b['mean4_std']:.4f}); ")
    if res_wdbc and "_error" not in res_wdbc and res_wdbc_site:
        a = res_wdbc["rows"][0]
        b = res_wdbc_site["rows"][0]
        txt += (f"on WDBC {a['mean4']:.4f} ± {a['mean4_std']:.4f} (own scaling "
                f"{b['mean4']:.4f} ± {b['mean4_std']:.4f}), although the demo's hospitals "
                "differ by a simulated scanner that each site's own standardisation would "
                "remove. ")
    txt += ("The pooled scaling helps FedAvg + fine-tuning as much (FLamby split: "
            f"{by['FedAvg + 100 fine-tuning steps']['mean4']:.4f}")
    if "FedAvg + 100 fine-tuning steps" in site_by:
        txt += f" against {site_by['FedAvg + 100 fine-tuning steps']['mean4']:.4f}"
    txt += ("), so the paired difference to it shrinks: one shared scale is what a shared "
            "model needs (§4b found the same under DP with hand-written constants).")
    d.p(txt, "")
    return by


def select_section(d, res, res_split, res_wdbc=None, res_fed=None, res_fed_split=None,
                   res_wdbc_fed=None):
    """Federated model selection on the heart hospitals (issue 16 item 3)."""
    d.p("## 1(d) Federated model selection (UCI heart), no per-data-set settings", "")
    if not res or "_error" in res:
        d.p("Not run in this session (`build/bench/bench_heart select`).", "")
        return
    st = res["settings"]
    d.p(f"Command: `{res['command']}` (seeds {res['seeds'][0]}–{res['seeds'][-1]}). Path: "
        f"{res['engine']}, with model selection on (docs/SELECTION.md). Base: "
        f"{st['base']}; selection: {st['selection']}; then {st['rounds']} rounds of the "
        f"winner. Personalised: {st['personalised']}. Per-site adaptation "
        "(`eval.adapt_search`, docs/SELECTION.md): each hospital chooses its adaptation "
        "steps (0, 10, 30, 100, 300, 1000) and rate (0.01, 0.03, 0.1, 0.3, 1) by 5-fold "
        "cross-validation on its training rows (lowest held-out loss, early stopping), then "
        "adapts on all of them. The ORACLE row lets the test rows choose each site's (steps, "
        "rate) from the same grid: an upper bound for that family and θ, not a result. FedAvg "
        f"+ FT: {st['fedavg_ft']}. Paired rows: the difference per seed and site, then mean "
        "± std over seeds. Accuracy on each hospital's test rows, mean ± std over seeds; "
        "mean4 = mean of the four.", "")
    for r_, title in ((res, "FLamby split (flamby-split.json)"),
                      (res_split, "a split nobody tuned on (`--split 7`: each hospital's "
                                  "rows re-split 66/34, stratified)")):
        if not r_ or "_error" in r_:
            d.p(f"{title}: not run.", "")
            continue
        d.p(f"**{title}**, `{r_['command']}`; winners per seed: "
            + "; ".join(f"{w['candidate']} ({w['setting']})" for w in r_["winners"]), "")
        d.table(["", "mean4"] + SITES,
                [[r["name"], f"{r['mean4']:.4f} ± {r['mean4_std']:.4f}"]
                 + [f"{m:.3f} ± {s_:.3f}" for m, s_ in zip(r["site_mean"], r["site_std"])]
                 for r in r_["rows"]])
    if res_wdbc and "_error" not in res_wdbc:
        d.p(f"**WDBC, the demo's four training hospitals** (60/40 split of `make demo`), "
            f"`{res_wdbc['command']}` (`metafl simulate`, the same defaults with model "
            "mlp:30-32-1; seeds " + ", ".join(res_wdbc["seeds"]) + "); winners per seed: "
            + "; ".join(str(w) for w in res_wdbc["winners"]), "")
        d.table(["", "mean4"] + res_wdbc["sites"],
                [[r["name"], f"{r['mean4']:.4f} ± {r['mean4_std']:.4f}"]
                 + [f"{m:.3f} ± {s_:.3f}" for m, s_ in zip(r["site_mean"], r["site_std"])]
                 for r in res_wdbc["rows"]])
    by = {r["name"]: r for r in res["rows"]}
    site = by["selection + per-site adaptation"]
    orc = next((r for r in res["rows"] if r["name"].startswith("ORACLE") and "LOHO" not in
                r["name"]), None)
    d.p("What this says, and what was tried (issue 16 items 2 and 3). The default grid "
        "around the coordinator's defaults, picked by mean validation AUROC on a fifth of "
        "each hospital's training rows, does not beat the same defaults without selection on "
        "the FLamby split when each site then uses the winner's adaptation (0.752 vs 0.758); "
        "the validation parts are 6 (Switzerland) to 40 rows and the pick changes from seed "
        "to seed. What helps is the adaptation chosen at each site: with it, selection + "
        f"per-site adaptation reaches {site['mean4']:.3f} ± {site['mean4_std']:.3f} on the "
        "FLamby split (the earlier choice, by accuracy on a 20% holdout over 0-300 steps × "
        "0.01-0.2, gave 0.807 ± 0.013; the same defaults without selection 0.803 ± 0.010), "
        "on par with FENDA-FL's published .8123 ± .0047 and paired above FedAvg + 100 "
        "fine-tuning steps; on the untuned re-split and on WDBC the same defaults also beat "
        "FedAvg + fine-tuning (tables above), so the gain is not a fit to the FLamby split.", "")
    orc_text = (f" (ORACLE row: the test rows choose each site's steps and rate) gives "
                f"{orc['mean4']:.3f} ± {orc['mean4_std']:.3f} for the selection's model"
                if orc else "")
    d.p("**The .83 target on the FLamby split is NOT reached, and per-site adaptation of "
        "these models cannot reach it**: the oracle" + orc_text + "; over a wider grid "
        "(steps to 3000, rates to 3; `build/bench/bench_heart explore`) it gives the same "
        "0.829 for the selection's model and 0.823–0.827 for each of the ten default-grid "
        "candidates trained alone (X_CAND=k). Switzerland is at its ceiling (0.938, 15 of "
        "16 positive), so .83 would need Cleveland, Hungary and VA at ≈ .794 on average; "
        "the oracle reaches 0.785 / 0.793 / 0.800 (mean 0.793).", "")
    d.p("Tried (`bench_heart explore`, FLamby split, 5 seeds, the selection's model, "
        "mean4 after choosing on training rows only, wide grid): 20% holdout by accuracy "
        "0.806 ± 0.014 and by loss 0.807 ± 0.018; 5-fold cross-validation by accuracy 0.810 ± "
        "0.009 and by loss 0.816 ± 0.012 (kept: the library's rule now); ensembling the "
        "adapted and the global model (probabilities averaged), chosen by holdout 0.798 ± "
        "0.015 or by CV 0.804 ± 0.006, not kept: its oracle for the defaults' model (0.826 ± "
        "0.003) is no higher than that of adaptation alone (0.827), and the evaluation "
        "protocol would need predictions in the report; a per-site head (only the last layer adapts, the body "
        "stays shared): see the next paragraph. Refit after selection is what the engine "
        "already does (the winner trains on all training rows; per-site adaptation adapts on "
        "all of them after choosing), so it is not a change. Also tried earlier, not kept: "
        "adding a 100-step, 5× rate adaptation and FedAvg to the default grid (mean4 0.761, "
        "+0.009 without per-site adaptation, within the seeds' spread). The demo now runs "
        "with per-site adaptation (docs/DEMO.md).", "")
    d.p(HEAD_NOTE, "")
    lo = by.get("LOHO k=10, selection on the other three")
    lcv = by.get("LOHO k=10, the new hospital chooses by CV on its 10 cases")
    lor = next((r for r in res["rows"] if r["name"].startswith("ORACLE") and "LOHO" in
                r["name"]), None)
    if lo and lcv:
        d.p("Leave one hospital out (selection and training on the other three, their "
            "selection scores adapting on 10 cases; the held-out hospital adapts on k = 10 "
            "drawn cases, 20 draws per seed): with the winner's adaptation "
            f"{lo['mean4']:.3f} ± {lo['mean4_std']:.3f}; when the new hospital chooses its "
            "own steps and rate by 5-fold cross-validation on its 10 cases (possible now "
            f"that the folds come from the support cases) {lcv['mean4']:.3f} ± "
            f"{lcv['mean4_std']:.3f} (leave-one-out instead of 5 folds gave the same, "
            "0.7745 ± 0.010): NOT the .80 target (section 1(c)'s hand-set Reptile reaches "
            ".788). Switzerland reaches its ceiling; Cleveland, Hungary and VA stay 0.02-0.04 "
            "below the hand-set run, whose meta-training settings (inner rate 0.05, 10 outer "
            "steps, β 0.5) the default grid does not contain."
            + (f" Even letting the held-out hospital's test rows choose its (steps, rate) "
               f"from the grid (one per hospital and seed, ORACLE row) gives "
               f"{lor['mean4']:.3f} ± {lor['mean4_std']:.3f}: below .80 with the models "
               "this selection trains." if lor else ""), "")
    fby = select_fed_section(d, res_fed, res_fed_split, res_wdbc_fed, res, res_split,
                             res_wdbc)
    d.p(FED_TRIED_NOTE, "")
    d.p(ENS_TRIED_NOTE, "")
    best = max(by["selection, personalised"]["mean4"], site["mean4"])
    measured = (f"{by['selection, personalised']['mean4']:.3f}; with per-site adaptation "
                f"{site['mean4']:.3f}" + (f" (oracle bound {orc['mean4']:.3f})" if orc
                                          else ""))
    if fby:
        fs = fby["selection + per-site adaptation"]
        forc = next((r for r in res_fed["rows"] if r["name"].startswith("ORACLE") and
                     "LOHO" not in r["name"]), None)
        best = max(best, fs["mean4"])
        measured = (f"{fs['mean4']:.3f} ± {fs['mean4_std']:.3f} with federated "
                    f"standardisation + per-site adaptation"
                    + (f" (oracle bound {forc['mean4']:.3f})" if forc else "")
                    + f"; each site's own scaling {site['mean4']:.3f}"
                    + "; a deep ensemble of 8 winners, each adapted per site (exploration, "
                    "not in the library, §1(d)): 0.833 ± 0.009")
    d.goals.append(("1(d) heart personalised, selection, no hand-tuning", "≥ .83 (5 seeds)",
                    measured, "met" if best >= 0.83 else "NOT MET"))
    if lo:
        lbest = lcv if lcv and lcv["mean4"] > lo["mean4"] else lo
        text = (f"{lbest['mean4']:.3f} ± {lbest['mean4_std']:.3f}"
                + (f" (oracle bound {lor['mean4']:.3f})" if lor else ""))
        flcv = fby.get("LOHO k=10, the new hospital chooses by CV on its 10 cases") if fby \
            else None
        if flcv and flcv["mean4"] > lbest["mean4"]:
            text = (f"{flcv['mean4']:.3f} ± {flcv['mean4_std']:.3f} with federated "
                    f"standardisation (each site's own scaling: {text})")
            lbest = flcv
        d.goals.append(("1(d) heart leave-one-hospital-out k = 10, selection", "≥ .80", text,
                        "met" if lbest["mean4"] >= 0.80 else "NOT MET"))


# What the other levers tried with federated standardisation gave (issue 16,
# filled in by hand from the runs named in it).
FED_TRIED_NOTE = (
    "Other levers tried with federated standardisation (FLamby split, 5 seeds, choosing on "
    "validation rows only; 2026-12-06, shared machine): **scoring each candidate with the "
    "adaptation it will be deployed with** (`selection.score_adaptation: search`: each site "
    "picks its steps and rate by cross-validation on its fit rows before scoring its "
    "validation rows; `build/bench/bench_heart select --standardize federated "
    "--score-search`): the same winners in 4 of 5 seeds, selection + per-site adaptation "
    "0.8238 ± 0.0180 (unchanged), leave-one-hospital-out 0.8032 ± 0.0127 (0.8076 with "
    "fixed scoring), at 3.8 min instead of about 1.7 for the run: kept as an option, not "
    "the default; **rule loss instead of AUROC** (`--rule loss`): 0.8150 ± 0.0251, "
    "leave-one-hospital-out 0.7983 ± 0.0136: not kept; **15 selection rounds per "
    "candidate instead of 5** (`--sel-rounds 15`, three times the selection's cost): "
    "0.8259 ± 0.0128, leave-one-hospital-out 0.8013 ± 0.0105: within the seeds' spread "
    "of the 5-round result, not kept; **a wider grid with two FedAvg candidates** (MLP "
    "and linear, local rate 0.05, batch 16; `--extra-fedavg`): never chosen on the four "
    "hospitals, chosen in 2 of 20 leave-one-out runs, 0.8238 ± 0.0180 and 0.8080 ± 0.0131: "
    "no change, not kept. "
    "Standardisation statistics from fit rows only is what the federated scaling does "
    "(the validation rows are left out of the moments); with each site's own scaling "
    "they still include the validation rows (docs/SELECTION.md). The .83 target stays "
    "out of reach on the FLamby split: the oracle for the selection's model (test rows "
    "choosing each site's steps and rate) is 0.837, and the CV choice gives 0.824.")

# What the variance and ensemble levers gave (issue 16, ens5; filled in by hand
# from the runs named in it).
ENS_TRIED_NOTE = (
    'Variance and ensembles (issue 16, 2026-12-06, shared 2-core machine; FLamby split, '
    'federated standardisation, seeds 42–46, every choice on training rows only): **a '
    'deep ensemble of the winner** (`X_SEEDENS=8 build/bench/bench_heart explore '
    "--standardize federated`: the selection's winner trained again from K−1 other "
    'initial θ, init seeds seed + 1000·j, the same 30 rounds, each with the pooled '
    'scaling of its own run: over all training rows for these, over the fit rows for the '
    "selection's run; each site chooses steps and rate by cross-validation for each "
    'member as `eval.adapt_search` does, adapts it on all its training rows, and averages '
    "the members' probabilities on its test rows) gives for K = 1…8: 0.8238 ± 0.0180, "
    '0.8291 ± 0.0115, 0.8320 ± 0.0059, 0.8255 ± 0.0073, 0.8280 ± 0.0096, 0.8365 ± 0.0096, '
    '0.8339 ± 0.0045, 0.8328 ± 0.0087 (K = 8 per site C/H/S/V .798 / .796 / .938 / .800; '
    'FedAvg + FT 0.8196 ± 0.0058; paired, ensemble − FedAvg + FT per seed and site: '
    '+0.0042 ± 0.0203 for one model, +0.0084 ± 0.0085 for K = 5, +0.0132 ± 0.0113 for K = '
    '8); the 8 global models without adaptation 0.8078 ± 0.0144; ORACLE (test rows choose '
    'one steps and rate per site for all 8 members; not a result) 0.8433 ± 0.0049. On the '
    'untuned re-split (`--split 7`) K = 1 0.8433 ± 0.0176, K = 5 0.8471 ± 0.0075, K = 8 '
    '0.8507 ± 0.0089, oracle 0.8648 ± 0.0028, so the gain is not a fit to the FLamby '
    'split. It is the only lever that crossed .83, and only at K = 3, 6, 7, 8, not at 2, '
    '4 or 5: it halves the seed-to-seed spread, as expected, but the mean gain (+0.004 to '
    '+0.013) is within about one standard deviation of the single model, and K must be '
    'fixed in advance (taking the best K from these rows would be choosing on the test '
    'rows): with K = 5 it is 0.828, with K = 8 0.833. It is not a library option: it '
    'needs K federated trainings of the winner and every site holding K θ at its '
    'evaluation (round engine, checkpoints and EvalTask would change), which this session '
    'did not build; nor was it run on WDBC (`bench/wdbc_select.sh` runs `metafl '
    "simulate`, which has no ensemble). **Averaging the cross-validation's fold models** "
    'instead of refitting (commit 425c098, `bench_heart select --standardize federated '
    '--adapt-ensemble folds` or `folds_refit`, prototype removed in 99b7afb): 0.8238 ± '
    '0.0180 both, unchanged (the sites mostly choose 0 to 30 steps, where the fold models '
    'hardly differ from the refit one), leave-one-hospital-out 0.8093 / 0.8089: not kept. '
    '**A decision threshold per site from the out-of-fold predictions** (0.05 to 0.95, '
    '`--adapt-threshold`, same commit): 0.8256 ± 0.0118, but leave-one-hospital-out falls '
    'to 0.7986 ± 0.0078 (0.8076 at 0.5); with fold averaging 0.8256 and 0.8005: not kept. '
    '**Proximal adaptation** (`X_PROX=1 build/bench/bench_heart explore --standardize '
    'federated`: each step also pulls toward the federated θ, θ ← θ − lr·(g + λ·(θ − '
    'θ_fed)), λ ∈ {0, 0.01, 0.1, 1} chosen with steps and rate by 5-fold CV loss): 0.8186 '
    '± 0.0184 against 0.8240 ± 0.0136 with λ = 0 in the same harness; its oracle 0.8394 '
    'against 0.8371: not kept. **Feature-wise adapters** (`X_PROX=2`, same harness: a '
    'per-feature scale and shift of the inputs, x ↦ a⊙x + b, adapted per site by SGD with '
    'the network frozen at the federated θ, steps and rate by the same CV): 0.8231 ± '
    '0.0167 against 0.8240 adapting the whole network; oracle 0.8378 against 0.8371: not '
    'kept.')

# What the per-site-head exploration gave (bench_heart explore, X_HEAD=1).
HEAD_NOTE = (
    "Per-site head (`X_HEAD=1 X_NOCV=1 build/bench/bench_heart explore`: only the last "
    "layer adapts, by projected SGD, the body stays the federated one): chosen by loss on "
    "a 20% holdout 0.809 ± 0.019, by accuracy 0.794 ± 0.026; its oracle over the wide "
    "grid is 0.829 ± 0.004, the same ceiling as adapting the whole network (0.829 ± "
    "0.005), so it was not made a library option. Feature-wise adapters (a per-feature "
    "scale and shift of the inputs): measured later, see \"Variance and ensembles\" below.")


def run_plots(plots, plot_dir):
    if not shutil.which("gnuplot"):
        return "gnuplot not found: plots skipped"
    errs = []
    for script, dat, png, ncols in plots:
        gp = os.path.join(plot_dir, script)
        cmd = ["gnuplot", "-e", f"datafile='{dat}'; outfile='{png}'; ncols={ncols}", gp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(png) or os.path.getsize(png) == 0:
            errs.append(f"{script}: {r.stderr.strip()[:200]}")
    return "; ".join(errs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--out", default="docs/BENCHMARKS.md")
    ap.add_argument("--img", default="docs/img")
    args = ap.parse_args()
    os.makedirs(args.img, exist_ok=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    R = lambda n: load(os.path.join(args.results, n + ".json"))  # noqa: E731
    run = R("run")
    m = machine()
    d = Doc()
    d.p("# metafl benchmarks", "",
        "Generated by `bench/report.py` from the JSON under "
        f"`{args.results}/` – do not edit by hand; run `make bench` (full) or "
        "`BENCH_QUICK=1 make bench` (quick subset, written to `build/bench-quick/`).", "")
    d.p("## Machine and run", "")
    d.table(["", ""], [
        ["CPU", m["cpu"]], ["nproc", m["nproc"]], ["memory", m["mem"]],
        ["kernel", m["kernel"]], ["libzmq", m["zmq"]], ["commit", m["commit"]],
        ["report generated", m["date"]],
        ["bench run", f"{run.get('date', '?')}, {run.get('total_seconds', '?')} s total"
         + (" (quick)" if run.get("quick") else "")],
    ])
    d.p(f"`make bench` took {run.get('total_seconds', '?')} s for this run (sum of the steps "
        "below plus report generation); every step has a timeout (40 min, 5 min in quick "
        "mode). `BENCH_QUICK=1 make bench` (2 seeds, 5 draws, P ≤ 1M, N ≤ 4, no other "
        "benchmarks) took 28–40 s when measured on 2026-11-24.", "")
    d.p("The machine had 2 cores shared with other engineers' builds and tests while "
        "this ran: accuracy is deterministic, timings are noisy – compare ratios "
        "measured in the same run.", "")
    if run.get("steps"):
        d.table(["step", "status", "seconds", "command"],
                [[s["name"], s["status"], s["seconds"], f"`{s['command']}`"]
                 for s in run["steps"]])
    tmp = tempfile.mkdtemp(prefix="metafl-report-")
    plots = []
    goals_at = len(d.lines)
    flamby_section(d, R("heart_flamby"))
    personal_section(d, R("heart_personal"), args.img, tmp, plots)
    newsite_section(d, R("heart_newsite"), args.img, tmp, plots)
    select_section(d, R("heart_select"), R("heart_select_split7"), R("wdbc_select"),
                   R("heart_select_federated"), R("heart_select_federated_split7"),
                   R("wdbc_select_federated"))
    rounds_section(d, R("rounds_floor"), R("rounds_engine"), args.img, tmp, plots,
                   R("site_round"))
    scale_sites_section(d, R("scale_sites"), R("rounds_engine"))
    compression_section(d, R("compression"), R("flower_ref"))
    large_model_section(d, R("large_model_100M"), R("large_model_10M_zero_copy"))
    dpsgd_section(d, R("dpsgd"))
    heart_privacy_section(d, R("heart_privacy"), R("heart_privacy_global"))
    heart_privacy_global_section(d, R("heart_privacy_global"))
    others = sorted(p for p in glob.glob(os.path.join(args.results, "*.json"))
                    if os.path.basename(p)[:-5] not in OURS)
    d.p("## Other benchmarks (numerics, wire, meta-learning)", "")
    if not others:
        d.p("No other results in this run (bench/results/nn.json, wire.json, meta*.json "
            "are included when those benchmarks write them).", "")
    for p in others:
        generic_section(d, os.path.basename(p), load(p))
    err = run_plots(plots, os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot"))
    if err:
        d.p(f"Plot problems: {err}", "")
    shutil.rmtree(tmp, ignore_errors=True)
    # goals summary goes right after the machine section
    summary = ["## Goals at a glance", ""]
    summary.append("| goal | target | measured | verdict |")
    summary.append("|---|---|---|---|")
    for g in d.goals:
        summary.append("| " + " | ".join(g) + " |")
    summary.append("")
    d.lines[goals_at:goals_at] = summary
    with open(args.out, "w") as f:
        f.write("\n".join(d.lines).rstrip() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
