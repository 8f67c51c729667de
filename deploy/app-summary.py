#!/usr/bin/env python3
"""Mean ± std over seeds of each site's evaluation (deploy/app.sh --seeds N).

usage: app-summary.py METRICS.jsonl...   (one file per seed and session)
Reads the "eval" lines; per site, the last eval line of each file counts
once. Prints, per site, the adapted meta-initialisation, the local-only
model and the global model as received (accuracy and AUROC for
classification, with sensitivity at specificity 0.9 for binary labels;
RMSE for regression; for treatment recommendation the held-out policy
value of each model's recommended arms, of the arm best in training for
everyone and of the arms given), as mean ± sample std (n seeds).
"""
import json
import statistics
import sys


def fmt(vals, signed=False):
    # -1 marks a missing metric, except for R², which may be negative.
    vals = [v for v in vals if v is not None and (signed or v >= 0)]
    if not vals:
        return "n/a"
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:.3f} ± {s:.3f}"


def main(paths):
    per_site = {}
    order = []
    for p in paths:
        last = {}
        try:
            with open(p) as f:
                for line in f:
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if d.get("event") == "eval" and "site" in d:
                        last[d["site"]] = d
        except OSError as e:
            print(f"app-summary: {p}: {e}", file=sys.stderr)
            return 1
        for site, d in last.items():
            if site not in per_site:
                order.append(site)
            per_site.setdefault(site, []).append(d)
    if not per_site:
        print("app-summary: no eval lines", file=sys.stderr)
        return 1
    regression = any("rmse" in d and d["rmse"] >= 0 for ds in per_site.values() for d in ds)
    treatment = any("policy_value" in d for ds in per_site.values() for d in ds)
    if treatment:
        cols = [("value adapted", "policy_value"), ("value local", "policy_value_local"),
                ("value global", "policy_value_before"),
                ("value best arm", "policy_value_best_arm"),
                ("value given", "policy_value_given"), ("acc adapted", "accuracy")]
    elif regression:
        cols = [("RMSE adapted", "rmse"), ("RMSE local", "rmse_local"), ("RMSE global", "rmse_before"),
                ("R² adapted", "r2"), ("held-out SD", "sd")]
        for ds in per_site.values():
            for d in ds:  # RMSE of predicting the held-out mean: RMSE / sqrt(1 - R²)
                r, r2 = d.get("rmse", -1), d.get("r2")
                d["sd"] = r / (1 - r2) ** 0.5 if r is not None and r >= 0 and r2 is not None and r2 < 1 else None
    else:
        cols = [("acc adapted", "accuracy"), ("acc local", "accuracy_local"),
                ("acc global", "accuracy_before"), ("AUROC adapted", "auroc"),
                ("AUROC local", "auroc_local")]
        # Binary labels: the early-warning operating point (sensitivity at
        # specificity 0.9 on the held-out rows), adapted and local only.
        if any("sens_at_spec90" in d for ds in per_site.values() for d in ds):
            cols += [("sens@spec.9", "sens_at_spec90"), ("sens@spec.9 loc", "sens_at_spec90_local")]
    print(f"{'site':<14} {'seeds':>5} " + " ".join(f"{c[0]:>15}" for c in cols))
    for site in order:
        ds = per_site[site]
        print(f"{site:<14} {len(ds):>5} " + " ".join(f"{fmt([d.get(k) for d in ds], k == 'r2'):>15}" for _, k in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
