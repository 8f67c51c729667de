#!/usr/bin/env bash
# The heart bench's defaults (bench_heart select, issue 16) on the demo's
# WDBC hospitals: nothing chosen for this data set. For each seed, three
# runs of `metafl simulate` over the four training hospitals of
# `make demo` (hospital-a..d, the demo's 60/40 split, own-site
# standardisation), personalised protocol (algorithm.k_shot 0: a site
# adapts on all its training rows, no eval.support_cases):
#   sel+site  the coordinator's defaults (model mlp:30-32-1, bce), selection
#             with its default grid (5 rounds each, validation 0.2), the
#             winner's 30 rounds, eval.adapt_search (each site picks its
#             adaptation by cross-validation on its training rows)
#   sel       the same without eval.adapt_search (the winner's adaptation)
#   fedavg    linear FedAvg (1 epoch, lr 0.05, batch 16, 30 rounds) + 100
#             fine-tuning steps at 0.05, as the heart bench's reference
# Accuracy on each hospital's held-out rows (from the run's final eval
# lines), mean ± std over seeds of the mean of four, per site, and the
# paired difference sel+site - fedavg.
#
# STANDARDIZE=federated: every run (FedAvg too) scales with the pooled
# statistics of the hospitals' fit rows (data.standardize: federated at the
# coordinator and the sites; selection's grid then also has the sites' own
# scaling as a candidate).
#
#   bash bench/wdbc_select.sh [OUT.json]     (needs build/demo/data from `make demo`,
#                                            or DEMO_DIR=...; BUILD=build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=${METAFL_BIN:-$BUILD/bin}
DATA=${DEMO_DIR:-$ROOT/build/demo}/data
[ -d "$DATA" ] && DATA=$(cd "$DATA" && pwd)   # the configs are read from a temporary dir
OUT=${1:-$ROOT/bench/results/wdbc_select.json}
SEEDS=${SEEDS:-"42 43 44 45 46"}
STANDARDIZE=${STANDARDIZE:-site}
case "$STANDARDIZE" in site|federated) ;; *) echo "wdbc_select: STANDARDIZE=site|federated" >&2; exit 2 ;; esac
SITES=(hospital-a hospital-b hospital-c hospital-d)
for s in "${SITES[@]}"; do
  [ -s "$DATA/$s.csv" ] || { echo "wdbc_select: $DATA/$s.csv missing: run make demo first" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/metafl-wdbc-select-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/sites" "$WORK/keys"
for s in coordinator "${SITES[@]}"; do
  "$BIN/metafl" keygen "$s" --dir "$WORK/keys" >/dev/null
done
for s in "${SITES[@]}"; do
  cat >"$WORK/sites/$s.yaml" <<EOF
site:
  id: $s
  key_file: $WORK/keys/$s.key
coordinator:
  endpoint: tcp://127.0.0.1:1
  public_key: $WORK/keys/coordinator.pub
data:
  source: csv
  path: $DATA/$s.csv
  train_fraction: 0.6
  split_seed: 3
  standardize: $STANDARDIZE
  schema:
    header: true
    on_missing: error
    columns:
$(head -n 1 "$DATA/$s.csv" | tr ',' '\n' | sed '$d' | sed 's/^/      - /')
      - {name: malignant, kind: label, rule: class, n_classes: 2}
runtime:
  threads: 1
EOF
done
config() { # FILE SEED VARIANT
  local algo model eval_extra sel
  case "$3" in
    fedavg)
      model="linear:30-1"
      algo=$'  name: fedavg\n  local_epochs: 1\n  batch_size: 16\n  inner_lr: 0.05\n  k_shot: 0'
      eval_extra=$'  adapt_steps: 100\n  adapt_lr: 0.05'
      sel=false ;;
    *)
      model="mlp:30-32-1"
      algo=$'  k_shot: 0'
      eval_extra=$([ "$3" = sel+site ] && echo "  adapt_search: true" || echo "  every: 0")
      sel=true ;;
  esac
  cat >"$1" <<EOF
coordinator:
  listen: tcp://127.0.0.1:*
  key: $WORK/keys/coordinator.key
  allow_dir: $WORK/keys
  run_dir: run
model:
  spec: $model
  loss: bce
  init_seed: $2
algorithm:
$algo
rounds:
  count: 30
  min_sites: 4
  wait_for_sites: 4
  seed: $2
data:
  standardize: $STANDARDIZE
eval:
$eval_extra
selection:
  enabled: $sel
  rounds: 5
  validation_fraction: 0.2
  validation_seed: $2
output:
  checkpoint_dir: run/checkpoints
  metrics: run/metrics.jsonl
sites:
$(for s in "${SITES[@]}"; do echo "  - sites/$s.yaml"; done)
EOF
}
for seed in $SEEDS; do
  for v in sel+site sel fedavg; do
    d="$WORK/$seed-$v"
    mkdir -p "$d"
    cp -r "$WORK/sites" "$d/"
    config "$d/coordinator.yaml" "$seed" "$v"
    (cd "$d" && "$BIN/metafl" simulate --config coordinator.yaml --log-level warn >log 2>&1) ||
      { echo "wdbc_select: seed $seed $v failed:" >&2; tail -5 "$d/log" >&2; exit 1; }
    cp "$d/run/metrics.jsonl" "$WORK/$seed-$v.jsonl"
  done
done
python3 - "$WORK" "$OUT" "$SEEDS" "${SITES[@]}" <<'EOF'
import json, statistics, sys
work, out, seeds, sites = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def final(seed, v):
    ev, win = {}, None
    for line in open(f"{work}/{seed}-{v}.jsonl"):
        e = json.loads(line)
        if e.get("event") == "eval":
            ev[e["site"]] = e  # the last one is the final evaluation
        if e.get("event") == "selection":
            win = e.get("setting")
    return ev, win
def sd(x):
    return statistics.stdev(x) if len(x) > 1 else 0.0
rows, winners = {}, []
for v in ("sel+site", "sel", "fedavg"):
    acc = []
    for seed in seeds:
        ev, win = final(seed, v)
        if v == "sel":
            winners.append(win)
        acc.append([ev[s]["accuracy"] for s in sites])
    rows[v] = acc
rows["global as-is (sel)"] = [[final(seed, "sel")[0][s]["accuracy_before"] for s in sites]
                              for seed in seeds]
rows["paired: sel+site - fedavg"] = [[a - b for a, b in zip(x, y)]
                                     for x, y in zip(rows["sel+site"], rows["fedavg"])]
names = {"sel+site": "selection + per-site adaptation", "sel": "selection, personalised",
         "fedavg": "FedAvg + 100 fine-tuning steps"}
import os
std = os.environ.get("STANDARDIZE", "site")
res = {"bench": "wdbc_select", "standardize": std,
       "command": ("STANDARDIZE=federated " if std == "federated" else "") + "bash bench/wdbc_select.sh",
       "seeds": seeds,
       "sites": sites, "winners": winners, "rows": []}
for k, acc in rows.items():
    m4 = [sum(a) / len(a) for a in acc]
    per = list(zip(*acc))
    r = {"name": names.get(k, k), "mean4": statistics.mean(m4), "mean4_std": sd(m4),
         "site_mean": [statistics.mean(p) for p in per], "site_std": [sd(list(p)) for p in per]}
    res["rows"].append(r)
    print(f"  {r['name']:<36} {r['mean4']:.4f} ± {r['mean4_std']:.4f}  ["
          + " ".join(f"{m:.3f}" for m in r["site_mean"]) + "]")
json.dump(res, open(out, "w"), indent=1)
print("wrote", out)
EOF
