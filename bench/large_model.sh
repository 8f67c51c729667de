#!/usr/bin/env bash
# Large models (issue 17, item 3): one coordinator and N site agents on
# loopback (CurveZMQ, signed updates, audit logs, checkpoints on disk) with
# the daemons' DEFAULT limits (no limits: section in either YAML file), a
# model of P parameters, and the memory and time ratios the issue asks for,
# all measured in this one run:
#
#   coordinator peak RSS / (3 × 4P + 64 MiB)       goal ≤ 1
#   each site's peak RSS / (4P + activations + 2 × 4P)  goal ≤ 1
#   round time (open to open) / CURVE floor (bench_rounds_floor, fp32 bytes,
#   same P and N, measured right after the daemons)
#
#   bash bench/large_model.sh OUT.json
#   env: METAFL_BUILD (default build), LARGE_P (default 100000000),
#        LARGE_N (default 4), LARGE_R (rounds, default 3),
#        BENCH_UPLOAD_ENCODING (fp32 / fp16 / int8), BENCH_MAX_UPLOADS,
#        LARGE_FLOOR=0 (skip the floor), COORD_WRAP (prefix for the coordinator,
#        e.g. "env GLIBC_TUNABLES=..."), LARGE_KEEP=DIR (keep the daemons' logs
#        there, to read a run's timeline), LARGE_SITE_ARGS (extra site-agent
#        arguments, e.g. "--log-level debug")
#
# "No training" as in rounds_engine.sh: one full-batch FedAvg step on each
# site's 4 training rows. Activations of that step are estimated as rows ×
# (hidden units) × 4 bytes × 4 (pre-activation, activation, and their
# gradients), printed with the site budget.
# Peak RSS: VmHWM of every daemon, polled every 0.2 s until it exits.
# Memory: about (3 + 4 × 2) × 4P at P = 100M (coordinator ≈ 3.1 × 4P, each
# site ≈ 2 × 4P, measured 2026-12-06): ≈ 4.5 GiB, plus the floor's run after.
set -u
OUT=${1:?usage: large_model.sh OUT.json}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/daemon_configs.sh
. bench/daemon_configs.sh
BUILD=${METAFL_BUILD:-build}
BIN=$BUILD/bin
P_WANT=${LARGE_P:-100000000}
N=${LARGE_N:-4}
R=${LARGE_R:-3}
for b in metafl metafl-coordinator metafl-site-agent; do
    [ -x "$BIN/$b" ] || { echo "large_model: $BIN/$b missing (make BUILD=$BUILD all)" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/metafl-bench-large.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${LARGE_KEEP:-}" ]; then
        mkdir -p "$LARGE_KEEP" && cp "$WORK"/*.log "$LARGE_KEEP"/ 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The model: mlp:32-H-2 (P = 35H + 2) up to 20M parameters, as
# rounds_engine.sh; above, two hidden layers mlp:32-H-H-2 (P = H² + 36H + 2):
# one hidden layer of millions of units cannot even allocate the learner's
# activation buffers (max_batch rows × H), and no real model is that shape.
read -r SPEC P HSUM < <(python3 bench/model_for.py "$P_WANT")
ROWS=4
mkdir -p "$WORK/keys/allow" "$WORK/run"
"$BIN/metafl" keygen coordinator --dir "$WORK/keys" >/dev/null || exit 1
python3 - "$WORK" "$N" <<'EOF'
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    rnd = random.Random(1000 * i + 8)
    with open(f"{work}/site{i:02d}.csv", "w") as f:
        f.write(",".join(f"f{j}" for j in range(32)) + ",y\n")
        for r in range(8):
            y = r % 2
            f.write(",".join(f"{rnd.gauss(0.5 * y, 1.0):.5f}" for _ in range(32)) + f",{y}\n")
EOF
PORT=$(( 20000 + RANDOM % 20000 ))
# The harness's YAML without its limits: block: the daemons' defaults are
# what is measured here.
export BENCH_DEFAULT_LIMITS=1
bench_coord_yaml "$WORK/coordinator.yaml" "$PORT" "$WORK/keys" "$WORK/run/coord" \
    "$SPEC" 0 1 "$R" "$N" "$N" 3600
for i in $(seq 1 "$N"); do
    s=$(printf 'site%02d' "$i")
    "$BIN/metafl" keygen "$s" --dir "$WORK/keys" >/dev/null || exit 1
    cp "$WORK/keys/$s.pub" "$WORK/keys/allow/"
    bench_site_yaml "$WORK/$s.yaml" "$s" "tcp://127.0.0.1:$PORT" "$WORK/keys" \
        "$WORK/$s.csv" 0.5 "$WORK/run/$s.audit"
done

${COORD_WRAP:-} "$BIN/metafl-coordinator" --config "$WORK/coordinator.yaml" --log-level warn \
    >"$WORK/coord.log" 2>&1 &
CPID=$!
PIDS+=("$CPID")
APIDS=()
for i in $(seq 1 "$N"); do
    s=$(printf 'site%02d' "$i")
    "$BIN/metafl-site-agent" --config "$WORK/$s.yaml" --exit-after-eval ${LARGE_SITE_ARGS:-} \
        >"$WORK/agent-$s.log" 2>&1 &
    APIDS+=($!)
    PIDS+=($!)
done
METRICS=$WORK/run/coord/metrics.jsonl
python3 bench/cpu_rounds.py "$METRICS" "$R" "$WORK/cpu.txt" "$CPID" "${APIDS[@]}" &
PIDS+=($!)
SPID=$!
declare -A HWM
for p in "$CPID" "${APIDS[@]}"; do HWM[$p]=0; done
waited=0
while kill -0 "$CPID" 2>/dev/null; do
    for p in "$CPID" "${APIDS[@]}"; do
        h=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null)
        [ -n "$h" ] && [ "$h" -gt "${HWM[$p]}" ] && HWM[$p]=$h
    done
    sleep 0.2
    waited=$((waited + 1))
    if [ $waited -gt 18000 ]; then
        echo "large_model: timed out after 3600 s" >&2
        kill "$CPID"
        break
    fi
done
wait "$CPID"
CRC=$?
wait "$SPID" 2>/dev/null
for a in "${APIDS[@]}"; do kill "$a" 2>/dev/null; wait "$a" 2>/dev/null; done
if [ $CRC -ne 0 ] || [ ! -s "$METRICS" ]; then
    echo "large_model: coordinator exit $CRC" >&2
    tail -n 5 "$WORK/coord.log" "$WORK"/agent-*.log >&2
    exit 1
fi
SITE_HWM=0
for a in "${APIDS[@]}"; do [ "${HWM[$a]}" -gt "$SITE_HWM" ] && SITE_HWM=${HWM[$a]}; done
FLOOR=null
FLOOR_CPU=null
if [ "${LARGE_FLOOR:-1}" = 1 ] && [ -x "$BUILD/bench/bench_rounds_floor" ]; then
    if "$BUILD/bench/bench_rounds_floor" --params "$P" --sites "$N" --rounds "$R" \
        --out "$WORK/floor.json" >/dev/null 2>&1; then
        read -r FLOOR FLOOR_CPU < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"][0]; print(r["median_ms"], r.get("cpu_ms", "null"))' "$WORK/floor.json")
    fi
fi
CPU_C=null
CPU_S=null
[ -s "$WORK/cpu.txt" ] && read -r CPU_C CPU_S _ <"$WORK/cpu.txt"
python3 - "$OUT" "$METRICS" "$P" "$HSUM" "$N" "$R" "$ROWS" "${HWM[$CPID]}" "$SITE_HWM" \
    "$FLOOR" "$FLOOR_CPU" "${BENCH_UPLOAD_ENCODING:-fp32}" "${BENCH_MAX_UPLOADS:-default}" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$CPU_C" "$CPU_S" "$SPEC" <<'EOF'
import json, sys, time
(out, metrics, p, h, n, r, rows, coord_kb, site_kb, floor, floor_cpu, enc, w, load,
 cpu_c, cpu_s, spec) = sys.argv[1:18]
p, h, n, r, rows = int(p), int(h), int(n), int(r), int(rows)
coord_kb, site_kb = int(coord_kb), int(site_kb)
num = lambda v: None if v in ("null", "None", "") else float(v)
floor, floor_cpu, cpu_c, cpu_s = num(floor), num(floor_cpu), num(cpu_c), num(cpu_s)
wall, coll = [], []
for line in open(metrics):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if "seconds" in m and m.get("round", 0) >= 2 and "site" not in m:
        coll.append(m["seconds"] * 1000)
        wall.append(m.get("wall_seconds", m["seconds"]) * 1000)
med = lambda v: sorted(v)[len(v) // 2] if v else None
MiB = 1 << 20
theta = 4 * p
coord_budget = 3 * theta + 64 * MiB
act = rows * h * 4 * 4
site_budget = theta + act + 2 * theta
row = {
    "model": spec, "params": p, "sites": n, "rounds": r, "encoding": enc, "max_concurrent_uploads": w,
    "round_ms": med(wall), "collection_ms": med(coll), "rounds_timed": len(wall),
    "floor_ms": floor, "round_over_floor": round(med(wall) / floor, 2) if floor and wall else None,
    "cpu_coord_ms": cpu_c, "cpu_sites_ms": cpu_s, "floor_cpu_ms": floor_cpu,
    "coordinator_peak_mib": round(coord_kb / 1024, 1),
    "coordinator_peak_over_4P": round(coord_kb * 1024 / theta, 2),
    "coordinator_budget_mib": round(coord_budget / MiB, 1),
    "coordinator_over_budget": round(coord_kb * 1024 / coord_budget, 3),
    "site_peak_mib": round(site_kb / 1024, 1),
    "site_peak_over_4P": round(site_kb * 1024 / theta, 2),
    "site_activations_mib": round(act / MiB, 1),
    "site_budget_mib": round(site_budget / MiB, 1),
    "site_over_budget": round(site_kb * 1024 / site_budget, 3),
    "loadavg_1m": float(load),
}
doc = {"bench": "large_model", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "command": f"LARGE_P={p} LARGE_N={n} LARGE_R={r} bash bench/large_model.sh {out}",
       "how": "real daemons with their default limits; peak RSS = VmHWM polled every 0.2 s; "
              "round_ms = median over rounds 2..R of the coordinator's wall_seconds (open to "
              "open); floor = bench_rounds_floor (raw CURVE, fp32 bytes) right after",
       "rows": [row]}
json.dump(doc, open(out, "w"), indent=2)
print(f"large_model: P={p} N={n} {enc}: round {row['round_ms']} ms, floor {floor} ms, "
      f"ratio {row['round_over_floor']}; coordinator peak {row['coordinator_peak_mib']} MiB = "
      f"{row['coordinator_peak_over_4P']} x 4P, {row['coordinator_over_budget']} of the budget "
      f"3 x 4P + 64 MiB; largest site peak {row['site_peak_mib']} MiB = "
      f"{row['site_peak_over_4P']} x 4P, {row['site_over_budget']} of 4P + activations "
      f"({row['site_activations_mib']} MiB) + 2 x 4P; CPU ms/round coordinator {cpu_c}, "
      f"sites {cpu_s}")
EOF
