#!/usr/bin/env bash
# Compressed updates (issue 17): what fp16 / int8 uploads cost in accuracy
# and what they save in round time, measured in one run.
#
#   bash bench/compression.sh OUT.json
#   env: METAFL_BUILD (default build), COMP_ENCODINGS (default "fp32 fp16 int8"),
#        COMP_P (overhead rows' P, default "10000 1000000"), COMP_N (default "2 4"),
#        COMP_TRAIN_N (sites of the training rows, default "4"; " " = none),
#        COMP_R (rounds per daemon run, default 6), COMP_HEART=0 (skip heart),
#        COMP_BROADCAST (the model's encoding to the sites, rounds.broadcast_encoding,
#        for every row: default fp32; "same" = each row's upload encoding)
#
# 1. Heart (UCI Heart Disease, FLamby's split, four real hospitals):
#    `bench_heart flamby` with BENCH_UPLOAD_ENCODING set, i.e. every site's
#    update encoded by the production site worker (stochastic rounding from
#    the round seed, error feedback); the harness rows (FedAvg, FedAdam,
#    FedAdagrad, FLamby's server rules) move with the encoding, the round
#    engine row does not (it runs the engine's own config: float32).
# 2. The real daemons (bench/rounds_engine.sh, CurveZMQ, signatures, audit,
#    checkpoints) with rounds.upload_encoding = each encoding: the overhead
#    rows against the CURVE floor of the same run for fp32 bytes
#    (bench_rounds_floor), and the training rows (2,242 and 999,987
#    parameters, FedAvg, 200 rows per site) with the final evaluation's mean
#    accuracy. One rounds_engine run per encoding, one after the other: each
#    row carries the 1-minute load average at its end (a shared machine
#    moves between them; compare ratios, and re-run on a quiet machine).
set -u
OUT=${1:?usage: compression.sh OUT.json}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${METAFL_BUILD:-build}
ENCS=${COMP_ENCODINGS:-"fp32 fp16 int8"}
WORK=$(mktemp -d /tmp/metafl-bench-comp.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [ "${COMP_HEART:-1}" = 1 ]; then
    for e in $ENCS; do
        bc=${COMP_BROADCAST:-fp32}; [ "$bc" = same ] && bc=$e
        BENCH_BROADCAST_ENCODING=$bc BENCH_UPLOAD_ENCODING=$e "$BUILD/bench/bench_heart" flamby --out "$WORK/heart-$e.json" \
            >"$WORK/heart-$e.txt" 2>&1 || { cat "$WORK/heart-$e.txt" >&2; exit 1; }
        echo "compression: heart $e done (load $(cut -d' ' -f1 /proc/loadavg))"
    done
fi
for e in $ENCS; do
    bc=${COMP_BROADCAST:-fp32}; [ "$bc" = same ] && bc=$e
    BENCH_BROADCAST_ENCODING=$bc BENCH_UPLOAD_ENCODING=$e METAFL_BUILD=$BUILD BENCH_QUICK=1 ROUNDS_P="${COMP_P:-10000 1000000}" \
        ROUNDS_N="${COMP_N:-2 4}" ROUNDS_R="${COMP_R:-6}" ROUNDS_TRAIN_N="${COMP_TRAIN_N:-4}" \
        ROUNDS_TMPFS=0 bash bench/rounds_engine.sh "$WORK/rounds-$e.json" ||
        echo "compression: rounds_engine with $e reported failures (see the JSON)" >&2
done

python3 - "$OUT" "$WORK" "$ENCS" <<'EOF'
import json, os, sys, time
out, work, encs = sys.argv[1], sys.argv[2], sys.argv[3].split()
heart, rows = {}, []
for e in encs:
    p = f"{work}/heart-{e}.json"
    if os.path.exists(p):
        heart[e] = {r["name"]: r["mean4"] for r in json.load(open(p))["rows"]}
    p = f"{work}/rounds-{e}.json"
    if os.path.exists(p):
        rows += json.load(open(p))["rows"]
bytes_per = {"fp32": 4, "fp16": 2, "int8": 1}
for r in rows:
    enc = r.get("encoding", "fp32")
    r["update_bytes"] = bytes_per.get(enc, 4) * r["params"]
    f = r.get("floor_ms")
    r["ratio_to_fp32_floor"] = round(r["median_ms"] / f, 2) if f else None
doc = {
    "bench": "compression",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "command": "bash bench/compression.sh " + out,
    "how": "heart: bench_heart flamby per encoding (mean accuracy of the 4 hospitals, "
           "mean over seeds); daemons: bench/rounds_engine.sh per encoding, ratio = open-to-"
           "open median / bench_rounds_floor for fp32 bytes of the same P and N in the same "
           "run; eval_accuracy = mean adapted accuracy of the final evaluation; loadavg_1m "
           "= the machine's load at the end of each row (shared machine)",
    "heart_mean_accuracy": heart,
    "rows": rows,
}
json.dump(doc, open(out, "w"), indent=1)
print(f"wrote {out}")
if heart:
    names = [n for n in next(iter(heart.values())) if "local" not in n and "pooled" not in n]
    print("heart, mean accuracy of 4 hospitals:", "  ".join(encs))
    for n in names:
        print(f"  {n[:60]:60s}", "  ".join(f"{heart[e].get(n, float('nan')):.4f}" for e in encs))
print(f"{'row':28s} {'enc':5s} {'P':>9s} {'N':>2s} {'ms':>8s} {'floor':>7s} {'ratio':>6s} "
      f"{'cpu ms':>7s} {'acc':>6s} {'load':>5s}")
for r in rows:
    print(f"{r['label']:28s} {r.get('encoding', 'fp32'):5s} {r['params']:9d} {r['sites']:2d} "
          f"{r['median_ms']:8.1f} {str(r.get('floor_ms')):>7s} {str(r.get('ratio_to_fp32_floor')):>6s} "
          f"{str(r.get('cpu_total_ms')):>7s} {str(r.get('eval_accuracy')):>6s} "
          f"{str(r.get('loadavg_1m')):>5s}")
EOF
