#!/usr/bin/env bash
# Round time of the REAL daemons (issue 6, goals 2a-2c): one
# metafl-coordinator and N metafl-site-agent processes on loopback over
# CurveZMQ, keys from `metafl keygen`, allow-listed, signed updates,
# checkpoints and audit log on: the production path, nothing mocked.
#
#   bash bench/rounds_engine.sh OUT.json
#   env: METAFL_BUILD (build dir, default build), BENCH_QUICK=1 (subset),
#        ROUNDS_P (e.g. "10000 1000000"), ROUNDS_N (e.g. "2 4"), ROUNDS_R (rounds),
#        ROUNDS_TRAIN_N (sites for the training rows; " " = none),
#        ROUNDS_TRAIN_SIZES (training models, default "small 1M": the 2,242- and
#        999,987-parameter MLPs; "small" alone for the small-round A/B), ROUNDS_TMPFS=0
#        (skip the tmpfs diagnostic), ROUNDS_KEEP_LOGS=DIR (copy the daemons'
#        logs, audit logs and metrics there), COORD_WRAP (prefix for the coordinator, e.g. strace),
#        SITE_WRAP (prefix for each agent, the site's name appended to its last word,
#        e.g. SITE_WRAP="strace -f -o /tmp/st/agent" writes /tmp/st/agent.site01),
#        BENCH_UPLOAD_ENCODING (fp32 default, fp16, int8: the sites' update encoding;
#        each row says its encoding, the final eval's mean accuracy and the 1-min load)
#
# Model: mlp:32-H-2 (softmax CE), P = 35H + 2: H = 286 → 10,012;
# 28,571 → 999,987 (Flower's 1M model); 285,714 → 9,999,992; above 20M
# parameters two hidden layers (bench/model_for.py: 100M → mlp:32-9982-9982-2).
# ROUNDS_TIMEOUT_S: how long one daemon run may take (default 900).
#
# "No local training": the daemons have no switch to skip training, so each
# site runs the smallest real step: FedAvg, one full-batch SGD step on its 4
# training rows. Its cost is counted in the round (stated in the report).
# "With training" (2b): 200 training rows per site, one local epoch, batch
# 32, FedAvg; MLP 32-64-2 (2,242 params) and 32-28571-2 (999,987).
#
# Round time (median_ms): the coordinator's metrics "wall_seconds" (round
# open → its close done: θ out, local step, Δ back, checks, aggregation,
# server step, θ hash, checkpoint written, audit record; what the next
# round waits for, i.e. open to open; µs resolution); collection_median_ms:
# its "seconds" (open → last update accepted). Medians over the rounds
# after the first.
# CPU per round (cpu_coord_ms, cpu_sites_ms = sum over the agents,
# cpu_total_ms): bench/cpu_rounds.py reads utime+stime of every daemon at the
# coordinator's metrics lines of round 1 and round R (rounds 2..R, start-up
# and evaluation excluded; 10 ms clock ticks per process over the run).
# CPU adds up across processes however they are scheduled: total / 2 is the
# fastest this work can run on 2 cores (bench/report.py holds it to the goals).
# floor_cpu_ms: bench_rounds_floor's CPU per round for the same P and N.
# Machine probes on every row (docs/PERFORMANCE.md "Small rounds: where the
# regression came from"): wire_floor_ms, the floor's wall time also for the
# training rows; sync_ms, the median fdatasync of a 1.2 kB append in the
# run directory's file system, right after the run.
# Peak RSS: VmHWM of the coordinator process, polled until it exits.
# Each no-training run is followed at once by bench_rounds_floor for the
# same P and N ("floor_ms"), so the ratio compares like with like.
set -u
OUT=${1:?usage: rounds_engine.sh OUT.json}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/daemon_configs.sh
. bench/daemon_configs.sh
BUILD=${METAFL_BUILD:-build}
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    PS=${ROUNDS_P:-"10000 1000000"}
    NS=${ROUNDS_N:-"2 4"}
    R=${ROUNDS_R:-4}
    TRAIN_NS=${ROUNDS_TRAIN_N:-"4"}
else
    PS=${ROUNDS_P:-"10000 1000000 10000000"}
    NS=${ROUNDS_N:-"2 4 8"}
    R=${ROUNDS_R:-6}
    TRAIN_NS=${ROUNDS_TRAIN_N:-"4 8"}
fi
for b in metafl metafl-coordinator metafl-site-agent; do
    if [ ! -x "$BIN/$b" ]; then
        printf '{"bench": "rounds_engine", "_error": "%s missing (make BUILD=%s all)"}\n' \
            "$BIN/$b" "$BUILD" >"$OUT"
        echo "rounds_engine: $BIN/$b missing" >&2
        exit 1
    fi
done
WORK=$(mktemp -d /tmp/metafl-bench-rounds.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${ROUNDS_KEEP_LOGS:-}" ]; then
        mkdir -p "$ROUNDS_KEEP_LOGS" && cp "$WORK"/*.log "$ROUNDS_KEEP_LOGS"/ 2>/dev/null
    fi
    rm -rf "$WORK"
    case ${RUN_BASE:-} in /dev/shm/metafl-bench-rounds.*) rm -rf "$RUN_BASE" ;; esac
}
trap cleanup EXIT

MAXN=1
for n in $NS $TRAIN_NS; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done
mkdir -p "$WORK/keys/allow"
"$BIN/metafl" keygen coordinator --dir "$WORK/keys" >/dev/null || exit 1
for i in $(seq 1 "$MAXN"); do
    s=$(printf 'site%02d' "$i")
    "$BIN/metafl" keygen "$s" --dir "$WORK/keys" >/dev/null || exit 1
    cp "$WORK/keys/$s.pub" "$WORK/keys/allow/"
done

# Synthetic tables (32 features, binary label), one per site and size.
python3 - "$WORK" "$MAXN" <<'EOF'
import random, sys
work, maxn = sys.argv[1], int(sys.argv[2])
for i in range(1, maxn + 1):
    for tag, rows in (("tiny", 8), ("train", 250)):
        rnd = random.Random(1000 * i + rows)
        with open(f"{work}/site{i:02d}-{tag}.csv", "w") as f:
            f.write(",".join(f"f{j}" for j in range(32)) + ",y\n")
            for r in range(rows):
                y = r % 2
                xs = [rnd.gauss(0.5 * y, 1.0) for _ in range(32)]
                f.write(",".join(f"{x:.5f}" for x in xs) + f",{y}\n")
EOF


site_yaml() { # name tag train_fraction endpoint
    bench_site_yaml "$WORK/$1.yaml" "$1" "$4" "$WORK/keys" "$WORK/$1-$2.csv" "$3" \
        "$RUN_BASE/run/$1.audit"
}

coord_yaml() { # spec port rounds n batch epochs run_dir
    bench_coord_yaml "$WORK/coordinator.yaml" "$2" "$WORK/keys" "$7" "$1" "$5" "$6" "$3" \
        "$4" "$4" 600
}

ROWS=()
FAILS=()
PORT=$(( 20000 + RANDOM % 20000 ))

# one_run LABEL SPEC P N TAG FRAC BATCH EPOCHS TRAINING(0/1)
# RUN_BASE: where the coordinator's run dir (checkpoints, audit, status,
# metrics) and the agents' audit logs go: $WORK (disk, the production
# setting) or a tmpfs folder (fsync is free there: the diagnostic that
# separates durable-write cost from the rest of the round).
RUN_BASE=$WORK
one_run() {
    local label=$1 spec=$2 p=$3 n=$4 tag=$5 frac=$6 batch=$7 epochs=$8 training=$9
    PORT=$((PORT + 1))
    local run="$RUN_BASE/run-$label"
    rm -rf "$RUN_BASE/run"
    mkdir -p "$RUN_BASE/run"
    coord_yaml "$spec" "$PORT" "$R" "$n" "$batch" "$epochs" "$run"
    ${COORD_WRAP:-} "$BIN/metafl-coordinator" --config "$WORK/coordinator.yaml" --log-level warn \
        >"$WORK/coord-$label.log" 2>&1 &
    local cpid=$!
    PIDS+=("$cpid")
    local apids=()
    for i in $(seq 1 "$n"); do
        local s
        s=$(printf 'site%02d' "$i")
        site_yaml "$s" "$tag" "$frac" "tcp://127.0.0.1:$PORT"
        ${SITE_WRAP:+$SITE_WRAP.$s} "$BIN/metafl-site-agent" --config "$WORK/$s.yaml" --exit-after-eval \
            >"$WORK/agent-$label-$s.log" 2>&1 &
        apids+=($!)
        PIDS+=($!)
    done
    # CPU per round (bench/cpu_rounds.py): utime+stime of the coordinator
    # and of every agent at the metrics lines of round 1 and round R.
    local cpu_out="$WORK/cpu-$label.txt"
    rm -f "$cpu_out"
    python3 bench/cpu_rounds.py "$run/metrics.jsonl" "$R" "$cpu_out" "$cpid" "${apids[@]}" &
    local spid=$!
    PIDS+=("$spid")
    # Poll the coordinator's peak RSS until it exits (bounded).
    local hwm=0 waited=0 limit=${ROUNDS_TIMEOUT_S:-900}
    while kill -0 "$cpid" 2>/dev/null; do
        local h
        h=$(awk '/VmHWM/ {print $2}' "/proc/$cpid/status" 2>/dev/null)
        [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
        sleep 0.2
        waited=$((waited + 1))
        if [ $waited -gt $((limit * 5)) ]; then
            kill "$cpid" 2>/dev/null
            FAILS+=("$label: timed out after ${limit}s")
            break
        fi
    done
    wait "$cpid"
    local crc=$?
    wait "$spid" 2>/dev/null
    local cpu_c=null cpu_s=null cpu_t=null
    if [ -s "$cpu_out" ]; then
        read -r cpu_c cpu_s _ <"$cpu_out"
        [ "$cpu_c" != null ] && cpu_t=$(python3 -c "print(f'{$cpu_c + $cpu_s:.1f}')")
    fi
    for a in "${apids[@]}"; do
        kill "$a" 2>/dev/null
        wait "$a" 2>/dev/null
    done
    local metrics="$run/metrics.jsonl"
    if [ -n "${ROUNDS_KEEP_LOGS:-}" ]; then
        mkdir -p "$ROUNDS_KEEP_LOGS/$label" &&
            cp "$RUN_BASE"/run/*.audit "$run/audit.log" "$metrics" "$ROUNDS_KEEP_LOGS/$label/" 2>/dev/null
    fi
    if [ $crc -ne 0 ] || [ ! -s "$metrics" ]; then
        FAILS+=("$label: coordinator exit $crc; $(tail -n 3 "$WORK/coord-$label.log" | tr '"\n' "' ")")
        echo "rounds_engine: $label failed (exit $crc)" >&2
        tail -n 5 "$WORK/coord-$label.log" >&2
        return
    fi
    local med
    med=$(python3 - "$metrics" <<'EOF'
import json, sys
secs, wall = [], []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if "seconds" in m and m.get("round", 0) >= 2 and "site" not in m:
        secs.append(m["seconds"])
        if "wall_seconds" in m:
            wall.append(m["wall_seconds"])
def med(v):
    v = sorted(v)
    return f"{v[len(v) // 2] * 1000:.3f}" if v else "null"
print(f"{med(secs)} {len(secs)} {med(wall)}" if secs else "nan 0 null")
EOF
)
    set -- $med
    # median_ms: open to open (wall_seconds) when the build reports it, else
    # 'seconds' (which in older builds also held the previous close, see
    # docs/PERFORMANCE.md "Round 2"): the round as a user waits for it, the
    # conservative number to hold against the floor. collection_median_ms:
    # open to the last update accepted.
    local round_ms=$1 coll_ms=$1
    [ "$3" != null ] && round_ms=$3
    # The wire floor for the same P and N, measured right after this run so
    # both see the same machine load (the ratio is what counts).
    # Its CPU per round (cpu_ms, getrusage over the timed rounds) too;
    # training rows get the floor's CPU only (cheap), not its time.
    # wire_floor_ms: the same floor's wall time on every row, training rows
    # too (not a ratio there: a probe of the machine, so rows measured on
    # different days can be told apart from a change in metafl).
    local floor=null floor_cpu=null wire_floor=null
    if [ -x "$BUILD/bench/bench_rounds_floor" ]; then
        if "$BUILD/bench/bench_rounds_floor" --params "$p" --sites "$n" --rounds "$R" \
            --out "$WORK/floor.json" >/dev/null 2>&1; then
            local fl_ms fl_cpu
            read -r fl_ms fl_cpu < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"][0]; print(r["median_ms"], r.get("cpu_ms", "null"))' "$WORK/floor.json")
            [ "$training" = 0 ] && floor=${fl_ms:-null}
            wire_floor=${fl_ms:-null}
            floor_cpu=${fl_cpu:-null}
        fi
    fi
    # sync_ms: the run directory's file system, probed right after the run:
    # median over 30 appends of a 1.2 kB line + fdatasync, the shape of one
    # audit record's sync (a small round waits for two in series: the
    # site's update_sent record, then the coordinator's close). Like the
    # floor, it says what the machine gave this row.
    local sync_ms
    sync_ms=$(python3 - "$RUN_BASE" <<'EOF'
import os, statistics, sys, tempfile, time
fd, path = tempfile.mkstemp(prefix="sync-probe.", dir=sys.argv[1])
line, t = b"x" * 1199 + b"\n", []
try:
    for _ in range(30):
        os.write(fd, line)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        t.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
finally:
    os.close(fd)
    os.unlink(path)
print(f"{statistics.median(t):.3f}")
EOF
)
    [ -n "$sync_ms" ] || sync_ms=null
    # The final evaluation's mean adapted accuracy over the sites (training
    # rows: the accuracy effect of compressed updates, bench/compression.sh).
    local acc
    acc=$(python3 - "$metrics" <<'EOF'
import json, sys
a = []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("event") == "eval" and m.get("accuracy", -1) >= 0:
        a.append(m["accuracy"])
print(f"{sum(a) / len(a):.4f}" if a else "null")
EOF
)
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "rounds_engine: $label P=$p N=$n median ${round_ms} ms open to open (collection ${coll_ms} ms) over $2 rounds (floor $floor ms), coordinator peak RSS ${hwm} kB; CPU ms per round: coordinator $cpu_c, sites $cpu_s, total $cpu_t (floor $floor_cpu); probes: wire floor $wire_floor ms, fdatasync $sync_ms ms"
    local where=disk
    [ "$RUN_BASE" != "$WORK" ] && where=tmpfs
    ROWS+=("{\"label\": \"$label\", \"model\": \"$spec\", \"params\": $p, \"sites\": $n, \"training\": $([ "$training" = 1 ] && echo true || echo false), \"run_dir\": \"$where\", \"median_ms\": $round_ms, \"collection_median_ms\": $coll_ms, \"rounds_timed\": $2, \"floor_ms\": $floor, \"coordinator_rss_kb\": $hwm, \"cpu_coord_ms\": $cpu_c, \"cpu_sites_ms\": $cpu_s, \"cpu_total_ms\": $cpu_t, \"floor_cpu_ms\": $floor_cpu, \"wire_floor_ms\": $wire_floor, \"sync_ms\": $sync_ms, \"encoding\": \"${BENCH_UPLOAD_ENCODING:-fp32}\", \"broadcast\": \"${BENCH_BROADCAST_ENCODING:-fp32}\", \"eval_accuracy\": $acc, \"loadavg_1m\": $load}")
}

for p in $PS; do
    read -r spec realp _ < <(python3 bench/model_for.py "$p")
    for n in $NS; do
        one_run "overhead-P$realp-N$n" "$spec" "$realp" "$n" tiny 0.5 0 1 0
    done
done
# The same overhead runs with every durable write on tmpfs (diagnostic).
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "${ROUNDS_TMPFS:-1}" = 1 ]; then
    RUN_BASE=$(mktemp -d /dev/shm/metafl-bench-rounds.XXXXXX)
    for p in $PS; do
        read -r spec realp _ < <(python3 bench/model_for.py "$p")
        for n in $NS; do
            one_run "tmpfs-P$realp-N$n" "$spec" "$realp" "$n" tiny 0.5 0 1 0
        done
    done
    rm -rf "$RUN_BASE"
    RUN_BASE=$WORK
fi
TRAIN_SIZES=${ROUNDS_TRAIN_SIZES:-"small 1M"}
for n in $TRAIN_NS; do
    case " $TRAIN_SIZES " in *" small "*)
        one_run "train-small-N$n" "mlp:32-64-2" 2242 "$n" train 0.8 32 1 1 ;; esac
    case " $TRAIN_SIZES " in *" 1M "*)
        one_run "train-1M-N$n" "mlp:32-28571-2" 999987 "$n" train 0.8 32 1 1 ;; esac
done

{
    echo "{"
    echo "  \"bench\": \"rounds_engine\","
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"command\": \"bash bench/rounds_engine.sh $OUT\","
    echo "  \"how\": \"real metafl-coordinator + N metafl-site-agent processes, CurveZMQ on loopback, signed updates, checkpoints and audit on; round time median_ms = the coordinator's metrics 'wall_seconds' (round open to the end of its close: theta out, local step, Delta back, checks, aggregation, server step, theta hash, checkpoint, audit records; what the next round waits for, i.e. open to open; microsecond resolution), collection_median_ms = its 'seconds' (open to the last update accepted); builds before 2026-11-24 10:10 UTC report only 'seconds' in whole ms, which also held the previous round's close, so median_ms = collection_median_ms there; medians of rounds 2..$R; 'no training' = one full-batch FedAvg SGD step on 4 rows (the daemons cannot skip local training); CPU per round: cpu_coord_ms / cpu_sites_ms (sum over the agents) / cpu_total_ms = utime+stime from /proc/PID/stat of each process (all its threads, ended ones included) read at the coordinator's metrics line of round 1 and of round $R (bench/cpu_rounds.py), divided by $R - 1: rounds 2..$R exactly, start-up and the final evaluation excluded; clock-tick resolution (10 ms per process over the run); floor_cpu_ms = bench_rounds_floor's CPU per round (getrusage, all threads) for the same P and N, measured right after, also for the training rows.\","
    echo "  \"rounds\": $R,"
    echo "  \"failures\": ["
    for i in "${!FAILS[@]}"; do
        sep=,
        [ "$i" -eq $((${#FAILS[@]} - 1)) ] && sep=
        printf '    "%s"%s\n' "$(echo "${FAILS[$i]}" | sed 's/"/'"'"'/g')" "$sep"
    done
    echo "  ],"
    echo "  \"rows\": ["
    for i in "${!ROWS[@]}"; do
        sep=,
        [ "$i" -eq $((${#ROWS[@]} - 1)) ] && sep=
        echo "    ${ROWS[$i]}$sep"
    done
    echo "  ]"
    echo "}"
} >"$OUT"
echo "wrote $OUT"
[ ${#FAILS[@]} -eq 0 ]
