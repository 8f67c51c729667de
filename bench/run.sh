#!/usr/bin/env bash
# `make bench`: runs every benchmark in bounded time, writes JSON results
# and regenerates docs/BENCHMARKS.md with tables and gnuplot PNGs.
#
#   make bench                  full run (~45 min on 2 shared cores: the
#                               Fashion-MNIST table alone takes 21-30 min
#                               since every method is tuned on validation
#                               classes; docs/BENCHMARKS.md has the times)
#   BENCH_QUICK=1 make bench    a quick subset (~30-40 s) into
#                               build/bench-quick/ (the committed results
#                               and docs/BENCHMARKS.md stay untouched)
#   BUILD=dir                   where the bench binaries and daemons are
#
# Every $BUILD/bench/bench_* binary runs from the repository root. Ours
# (bench_heart, bench_rounds_floor) get explicit --out paths; the others'
# (bench_nn, bench_wire, bench_meta_*) are run without arguments and must
# write bench/results/<name>.json themselves; they get BENCH_QUICK and
# BENCH_RESULTS (the results folder) in the environment. A binary that fails
# or times out is recorded as such in run.json and the report says so.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    RESULTS=${BENCH_RESULTS:-$BUILD/bench-quick/results}
    DOC=$BUILD/bench-quick/BENCHMARKS.md
    IMG=$BUILD/bench-quick/img
    QFLAG=--quick
    STEP_TIMEOUT=300
else
    RESULTS=${BENCH_RESULTS:-bench/results}
    DOC=docs/BENCHMARKS.md
    IMG=docs/img
    QFLAG=
    STEP_TIMEOUT=2400 # bench_meta_fmnist took 1283-1810 s on shared cores
fi
LOGS=$BUILD/bench-logs
mkdir -p "$RESULTS" "$IMG" "$LOGS"
export BENCH_QUICK=$QUICK BENCH_RESULTS=$RESULTS METAFL_BUILD=$BUILD

RUN_JSON=$RESULTS/run.json
STEPS=()
T_ALL=$(date +%s)

# step NAME CMD...: runs CMD with a timeout, logs to $BUILD/bench-logs/NAME.log,
# and records status and seconds for the report.
step() {
    local name=$1
    shift
    local t0 t1 rc
    t0=$(date +%s.%N)
    echo "== bench: $name: $*"
    timeout "$STEP_TIMEOUT" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    tail -n 40 "$LOGS/$name.log"
    local status=ok
    [ $rc -eq 124 ] && status=timeout
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed (exit $rc)"
    echo "== bench: $name: $status"
    local cmd
    cmd=$(printf '%s ' "$@" | sed 's/"/\\"/g; s/ $//')
    STEPS+=("{\"name\": \"$name\", \"command\": \"$cmd\", \"status\": \"$status\", \"seconds\": $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')}")
}

have() { [ -x "$BUILD/bench/$1" ]; }

# Goal 1: accuracy on UCI Heart Disease (seconds; deterministic).
if have bench_heart; then
    # privacy: record-level DP-SGD; its noise comes from a CSPRNG, so it varies
    # privacy-global: the one global model under DP (feature scaling, recipe by CV)
    for mode in flamby personal newsite privacy privacy-global; do
        step "heart_$mode" "$BUILD/bench/bench_heart" "$mode" $QFLAG --out "$RESULTS/heart_$mode.json"
    done
    # federated model selection (issue 16): the FLamby split and an untuned one
    step heart_select "$BUILD/bench/bench_heart" select $QFLAG --out "$RESULTS/heart_select.json"
    step heart_select_split7 "$BUILD/bench/bench_heart" select --split 7 $QFLAG \
        --out "$RESULTS/heart_select_split7.json"
    # the same defaults on the demo's WDBC hospitals (needs `make demo`'s data)
    if [ -s "$BUILD/demo/data/hospital-a.csv" ] && [ -x "$BUILD/bin/metafl" ]; then
        if [ "$QUICK" = 1 ]; then WSEEDS="42 43"; else WSEEDS="42 43 44 45 46"; fi
        step wdbc_select env SEEDS="$WSEEDS" BUILD="$BUILD" DEMO_DIR="$BUILD/demo" \
            bash bench/wdbc_select.sh "$RESULTS/wdbc_select.json"
    else
        echo "== bench: wdbc_select skipped ($BUILD/demo/data missing: make demo first)"
    fi
else
    echo "== bench: $BUILD/bench/bench_heart missing (make BUILD=$BUILD bench-bins)"
fi

# Goal 2(a): the wire floor, then the real coordinator + agents in the same run.
if have bench_rounds_floor; then
    if [ "$QUICK" = 1 ]; then
        step rounds_floor "$BUILD/bench/bench_rounds_floor" --params 10012,999987 --sites 2,4 \
            --rounds 5 --out "$RESULTS/rounds_floor.json"
    else
        # the exact P of the daemons' MLPs (bench/rounds_engine.sh): same bytes
        step rounds_floor "$BUILD/bench/bench_rounds_floor" --params 10012,999987,9999992 \
            --rounds 7 --out "$RESULTS/rounds_floor.json"
    fi
fi
if [ -x bench/rounds_engine.sh ] || [ -f bench/rounds_engine.sh ]; then
    step rounds_engine bash bench/rounds_engine.sh "$RESULTS/rounds_engine.json"
fi
have bench_rounds_floor && step scale_sites bash bench/scale_sites.sh "$RESULTS/scale_sites.json"

# The other engineers' benchmarks (numerics, wire, meta-learning). They
# write bench/results/<name>.json themselves, so the quick subset skips them
# (it must not overwrite committed results).
[ "$QUICK" = 1 ] && echo "== bench: quick: skipping the other benchmarks (they write bench/results/)"
for bin in "$BUILD"/bench/bench_*; do
    [ "$QUICK" = 1 ] && break
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    case $name in
        bench_heart | bench_rounds_floor | bench_rounds_*) continue ;;
    esac
    step "${name#bench_}" "$bin"
done

T_END=$(date +%s)
{
    echo "{"
    echo "  \"quick\": $QUICK,"
    echo "  \"build\": \"$BUILD\","
    echo "  \"total_seconds\": $((T_END - T_ALL)),"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"steps\": ["
    n=${#STEPS[@]}
    for i in "${!STEPS[@]}"; do
        sep=,
        [ "$i" -eq $((n - 1)) ] && sep=
        echo "    ${STEPS[$i]}$sep"
    done
    echo "  ]"
    echo "}"
} >"$RUN_JSON"

python3 bench/report.py --results "$RESULTS" --out "$DOC" --img "$IMG"
echo "== bench: done in $((T_END - T_ALL)) s; report: $DOC"
