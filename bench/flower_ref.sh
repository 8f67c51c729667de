#!/usr/bin/env bash
# Same-run Flower reference (issue 17): alternates, in one run, a minimal
# Flower-like FedAvg round in Python (bench/flower_ref/run.py: gRPC without
# TLS, one bidirectional stream per client process, tensors as .npy bytes,
# one local epoch over 200 rows, batch 32, numpy MLP, row-weighted mean)
# and metafl's own training rows (bench/rounds_engine.sh, fp32 and int8
# upload + int8 broadcast) at the same points, and prints per point the
# reference's round time, metafl's, and speed-up = reference / metafl.
#
# The reference omits Flower's framework work (strategy objects, Parameters
# conversions, client manager and proxies, its driver, protobuf messages),
# so it is a LOWER bound on Flower's round time on this machine: a ratio
# against it UNDER-states metafl's speed-up against Flower.
#
#   bash bench/flower_ref.sh OUT.json
#   env: METAFL_BUILD (build dir, default build), FLREF_SIZES ("small 1M":
#        2,242 and 999,987 parameters), FLREF_N ("4 8"), FLREF_R (rounds per
#        run, default 6; medians over rounds 2..R), FLREF_REPS (alternating
#        repetitions, default 2), FLREF_BLAS_THREADS (OpenBLAS threads per
#        reference process, default 1: N processes share the cores),
#        FLREF_PYTHON (default /usr/bin/python3: needs python3-grpcio and
#        python3-numpy from Debian, deploy/install-deps.sh)
set -u
case ${1:-} in -h | --help)
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0 ;;
esac
OUT=${1:?usage: flower_ref.sh OUT.json (--help for the environment)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${FLREF_PYTHON:-/usr/bin/python3}
SIZES=${FLREF_SIZES:-"small 1M"}
NS=${FLREF_N:-"4 8"}
R=${FLREF_R:-6}
REPS=${FLREF_REPS:-2}

fail() {
    printf '{"bench": "flower_ref", "_error": "%s"}\n' "$1" >"$OUT"
    echo "flower_ref: error: $1" >&2
    exit 1
}
if ! "$PY" -c 'import grpc, numpy' 2>/dev/null; then
    fail "$PY cannot import grpc and numpy: install Debian's python3-grpcio and python3-numpy (bash deploy/install-deps.sh, or apt-get install python3-grpcio python3-numpy)"
fi
BUILD=${METAFL_BUILD:-build}
for b in metafl metafl-coordinator metafl-site-agent; do
    [ -x "$BUILD/bin/$b" ] || fail "$BUILD/bin/$b missing (make BUILD=$BUILD all)"
done

WORK=$(mktemp -d /tmp/metafl-bench-flref.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0

hidden_of() { case $1 in small) echo 64 ;; 1M) echo 28571 ;; *) return 1 ;; esac; }

# metafl SIZE N ENC TAG: one rounds_engine training row into $WORK/TAG.json.
metafl_row() {
    local enc=$3 bc=fp32
    [ "$enc" = int8 ] && bc=int8
    if ! METAFL_BUILD=$BUILD ROUNDS_P=" " ROUNDS_N=" " ROUNDS_TRAIN_N="$2" ROUNDS_TMPFS=0 \
        ROUNDS_R=$R ROUNDS_TRAIN_SIZES=$1 BENCH_UPLOAD_ENCODING=$enc BENCH_BROADCAST_ENCODING=$bc \
        bash bench/rounds_engine.sh "$WORK/$4.json" >"$WORK/$4.log" 2>&1; then
        echo "flower_ref: metafl $1 N=$2 $enc failed; last lines:" >&2
        tail -n 5 "$WORK/$4.log" >&2
        FAILS=$((FAILS + 1))
    fi
}

for rep in $(seq 1 "$REPS"); do
    for size in $SIZES; do
        h=$(hidden_of "$size") || fail "FLREF_SIZES: '$size' is neither small nor 1M"
        for n in $NS; do
            tag="$size-N$n-rep$rep"
            echo "flower_ref: rep $rep, $size, N=$n: reference, metafl fp32, metafl int8 (load $(cut -d' ' -f1 /proc/loadavg))"
            if ! OPENBLAS_NUM_THREADS=${FLREF_BLAS_THREADS:-1} timeout 1800 \
                "$PY" bench/flower_ref/run.py --hidden "$h" --sites "$n" --rounds "$R" \
                --out "$WORK/ref-$tag.json"; then
                echo "flower_ref: reference $size N=$n failed" >&2
                FAILS=$((FAILS + 1))
            fi
            metafl_row "$size" "$n" fp32 "fp32-$tag"
            metafl_row "$size" "$n" int8 "int8-$tag"
        done
    done
done

"$PY" bench/flower_ref/summary.py "$WORK" "$OUT" "$R" "$REPS" "$SIZES" "$NS" || FAILS=$((FAILS + 1))
[ "$FAILS" -eq 0 ] || { echo "flower_ref: $FAILS run(s) failed (see above)" >&2; exit 1; }
