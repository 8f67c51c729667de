#!/usr/bin/env bash
# The evaluation harness end to end on the real UCI Heart Disease files:
# bench_heart reproduces FLamby's pooled row and majority-class row, its own
# preprocessing agrees with data/heart.h, and bench/report.py turns the
# result into a report with a goals table. Needs ../shared (skips with a
# message when it is absent).
source "$(dirname "$0")/lib.sh"

SHARED=${METAFL_SHARED:-$ROOT/../shared}
if [ ! -f "$SHARED/data/uci-heart-disease/flamby-split.json" ]; then
  echo "SKIP: $SHARED/data/uci-heart-disease absent: the harness cannot be checked"
  exit 0
fi

# bench binaries are not part of `make all`; build just this one (in
# METAFL_BUILD, default build/, next to the binaries `make test` built).
B=${METAFL_BUILD:-build}
make -C "$ROOT" --no-print-directory BUILD="$B" "$B/bench/bench_heart" >"$TEST_TMP/make.log" 2>&1 ||
  fail "cannot build $B/bench/bench_heart (see make.log)"
BH=$ROOT/$B/bench/bench_heart

mkdir -p "$TEST_TMP/results"
(cd "$ROOT" && METAFL_SHARED=$SHARED "$BH" flamby --seeds 2 \
  --out "$TEST_TMP/results/heart_flamby.json") >"$TEST_TMP/flamby.log" 2>&1 ||
  fail "bench_heart flamby failed"

python3 - "$TEST_TMP/results/heart_flamby.json" <<'EOF' || fail "flamby result checks"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["data_check_max_diff"] >= 0 and r["data_check_max_diff"] < 1e-5, r["data_check_max_diff"]
# ANCHORS.md: majority class per site
assert [round(v, 4) for v in r["majority"]] == [0.5385, 0.6292, 0.9375, 0.7778], r["majority"]
rows = {x["name"]: x for x in r["rows"]}
pooled = rows["pooled"]
# FLamby's published pooled mean of 4 is .7353
assert abs(pooled["mean4"] - 0.7353) < 0.01, pooled["mean4"]
for name in ("FedAvg", "FedAdam", "FedAdagrad", "local Cleveland only"):
    m = rows[name]["mean4"]
    assert 0.55 < m < 0.85, (name, m)
print("flamby rows ok")
EOF

python3 "$ROOT/bench/report.py" --results "$TEST_TMP/results" --out "$TEST_TMP/B.md" \
  --img "$TEST_TMP/img" >"$TEST_TMP/report.log" 2>&1 || fail "report.py failed"
grep -q "^## Goals at a glance" "$TEST_TMP/B.md" || fail "no goals table"
grep -q "^| pooled |" "$TEST_TMP/B.md" || fail "no pooled row in the FLamby table"
grep -q "1(b) personalised" "$TEST_TMP/B.md" || fail "missing results not reported as a goal"
echo "bench harness ok"
