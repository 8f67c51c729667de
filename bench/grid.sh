#!/usr/bin/env bash
# The benchmark grid of issue 17 (item 4): the real daemons (rounds_engine.sh:
# CurveZMQ, signed updates, audit, checkpoints on disk, the daemons' default
# limits) against the raw-CURVE floor for fp32 bytes (bench_rounds_floor,
# measured right after each daemon run, so both see the same load), for
# every P × N × upload encoding, with CPU per round beside wall time and the
# coordinator's peak RSS. One run produces every ratio it prints.
#
#   bash bench/grid.sh OUT.json
#   env: METAFL_BUILD (default build), GRID_P (default
#        "10000 1000000 10000000 100000000"), GRID_N (default "2 4 8"),
#        GRID_ENC (default "fp32 fp16 int8": upload encodings), GRID_BCAST
#        (default "fp32": broadcast encodings, rounds.broadcast_encoding; each
#        cell is one upload × one broadcast encoding), GRID_PAIRS (instead of
#        the product: "UP/DOWN ..." pairs, e.g. "fp32/fp32 int8/int8"),
#        GRID_R (rounds, default 5;
#        medians over rounds 2..R), GRID_R_BIG (rounds for P ≥ 50M, default 3),
#        GRID_MEM_GIB (memory the run may use, default: MemAvailable − 2 GiB)
#
# A cell whose daemons would not fit in memory is skipped and listed as such
# (estimate: coordinator 7 × 4P, each site 9 × 4P, from bench/large_model.sh;
# at P = 100M and N = 8 that is ≈ 30 GiB, more than a 24 GiB machine has).
# Run it on a quiet machine: every cell's ratio is meaningful on its own,
# but cells run minutes apart and the load may move between them (each row
# carries the 1-minute load average at its end).
set -u
OUT=${1:?usage: grid.sh OUT.json}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PS=${GRID_P:-"10000 1000000 10000000 100000000"}
NS=${GRID_N:-"2 4 8"}
ENCS=${GRID_ENC:-"fp32 fp16 int8"}
BCASTS=${GRID_BCAST:-fp32}
R=${GRID_R:-5}
R_BIG=${GRID_R_BIG:-3}
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
MEM_GIB=${GRID_MEM_GIB:-$(( avail_kb / 1048576 - 2 ))}
WORK=$(mktemp -d /tmp/metafl-bench-grid.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SKIPPED=()
PAIRS=${GRID_PAIRS:-}
if [ -z "$PAIRS" ]; then
    for bc in $BCASTS; do for enc in $ENCS; do PAIRS="$PAIRS $enc/$bc"; done; done
fi
for pair in $PAIRS; do
    enc=${pair%/*} bc=${pair#*/}
    for p in $PS; do
        for n in $NS; do
            need=$(( (7 + 9 * n) * 4 * p / 1073741824 + 1 ))
            if [ "$need" -gt "$MEM_GIB" ]; then
                SKIPPED+=("P=$p N=$n $enc/$bc: needs ~$need GiB, $MEM_GIB GiB allowed")
                echo "grid: skip P=$p N=$n $enc/$bc (needs ~$need GiB, $MEM_GIB allowed)"
                continue
            fi
            r=$R
            [ "$p" -ge 50000000 ] && r=$R_BIG
            BENCH_DEFAULT_LIMITS=1 BENCH_UPLOAD_ENCODING=$enc BENCH_BROADCAST_ENCODING=$bc \
                BENCH_QUICK=1 ROUNDS_P=$p \
                ROUNDS_TIMEOUT_S=3600 \
                ROUNDS_N=$n ROUNDS_R=$r ROUNDS_TMPFS=0 ROUNDS_TRAIN_N=" " \
                bash bench/rounds_engine.sh "$WORK/$enc-$bc-$p-$n.json" 2>&1 |
                grep '^rounds_engine: overhead' | sed "s/^/grid: up $enc down $bc /"
        done
    done
done
python3 - "$OUT" "$WORK" "${SKIPPED[@]}" <<'EOF'
import glob, json, sys, time
out, work, skipped = sys.argv[1], sys.argv[2], sys.argv[3:]
rows, failures = [], []
for f in sorted(glob.glob(f"{work}/*.json")):
    try:
        d = json.load(open(f))
    except ValueError:
        failures.append(f"{f}: unreadable")
        continue
    failures += d.get("failures", [])
    rows += d.get("rows", [])
def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None
for r in rows:
    r["round_over_floor"] = ratio(r.get("median_ms"), r.get("floor_ms"))
    r["cpu_over_floor_cpu"] = ratio(r.get("cpu_total_ms"), r.get("floor_cpu_ms"))
    r["coordinator_rss_over_4P"] = round(r["coordinator_rss_kb"] * 1024 / (4 * r["params"]), 2)
def enc_key(e):
    return ["fp32", "fp16", "int8"].index(e) if e in ("fp32", "fp16", "int8") else 9
for r in rows:
    r.setdefault("broadcast", "fp32")
rows.sort(key=lambda r: (r["params"], r["sites"], enc_key(r["broadcast"]),
                         enc_key(r["encoding"])))
doc = {"bench": "grid", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "command": f"bash bench/grid.sh {out}",
       "how": "bench/rounds_engine.sh per cell (no training: one full-batch FedAvg step on 4 "
              "rows; disk run dir; default limits); round_over_floor = median open-to-open "
              "round / bench_rounds_floor (raw CURVE, fp32 bytes, same P and N, measured right "
              "after); cpu_over_floor_cpu = CPU of all daemons per round / the floor's CPU",
       "skipped": skipped, "failures": failures, "rows": rows}
json.dump(doc, open(out, "w"), indent=2)
print(f"{'P':>11} {'N':>2} {'up':>4} {'down':>4} {'round ms':>9} {'floor ms':>9} {'ratio':>6} "
      f"{'CPU ms (coord/sites/total)':>27} {'floor CPU':>9} {'CPU ratio':>9} {'coord RSS/4P':>12} {'load':>5}")
for r in rows:
    cpu = f"{r['cpu_coord_ms']}/{r['cpu_sites_ms']}/{r['cpu_total_ms']}"
    print(f"{r['params']:>11} {r['sites']:>2} {r['encoding']:>4} {r['broadcast']:>4} "
          f"{r['median_ms']:>9.1f} "
          f"{r['floor_ms'] if r['floor_ms'] is not None else '-':>9} "
          f"{r['round_over_floor'] if r['round_over_floor'] is not None else '-':>6} {cpu:>27} "
          f"{r['floor_cpu_ms'] if r['floor_cpu_ms'] is not None else '-':>9} "
          f"{r['cpu_over_floor_cpu'] if r['cpu_over_floor_cpu'] is not None else '-':>9} "
          f"{r['coordinator_rss_over_4P']:>12} {r['loadavg_1m']:>5}")
for s in skipped:
    print(f"skipped: {s}")
for f in failures:
    print(f"FAILED: {f}")
print(f"wrote {out}")
sys.exit(1 if failures else 0)
EOF
