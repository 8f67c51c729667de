#!/usr/bin/env bash
# The imaging application (issue 13 item 2) end to end, short: deploy/app.sh
# imaging --quick runs a coordinator and three hospitals that see different
# Fashion-MNIST classes over CurveZMQ (ProtoNets, 4-block CNN, 2 rounds),
# then a new hospital whose five classes no site trained on joins live and
# adapts; metafl report prints the table.
source "$(dirname "$0")/lib.sh"

FM=/usr/share/datasets/fashion-mnist
[ -r "$FM/train-images-idx3-ubyte.gz" ] ||
  fail "$FM not found: deploy/install-deps.sh installs dataset-fashion-mnist"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$TEST_TMP/app
APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" imaging --quick \
  >"$TEST_TMP/app.log" 2>&1 || { cat "$TEST_TMP/app.log"; fail "deploy/app.sh imaging --quick failed"; }
R=$OUT/seed-1
[ "$(grep -c '"event":"round"' "$R/run/metrics.jsonl")" -eq 2 ] || fail "expected 2 rounds"
for s in hospital-a hospital-b hospital-c; do
  grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$R/run/metrics.jsonl" || fail "no eval line for $s"
done
# The new hospital was evaluated live, on its own five unseen classes, and
# the meta-learned embedding separates them well above chance (0.2).
line=$(grep '"event":"eval".*"site":"hospital-new"' "$R/run-join/metrics.jsonl") ||
  fail "hospital-new did not report"
acc=$(sed 's/.*"accuracy":\([0-9.e-]*\),.*/\1/' <<<"$line")
awk -v a="$acc" 'BEGIN { exit !(a > 0.4) }' || fail "hospital-new accuracy $acc is not above 0.4"
grep -q "evaluated live.*hospital-new" "$TEST_TMP/app.log" || { cat "$TEST_TMP/app.log"; fail "report does not say hospital-new was evaluated live"; }
grep -q "hospital-new.*new hospital, unseen" "$TEST_TMP/app.log" || fail "report table lacks hospital-new"
# No process of the run outlives the script.
! pgrep -f "$OUT/seed-1/coordinator" >/dev/null || fail "a coordinator outlived deploy/app.sh"
echo "ok: imaging app: 3 hospitals, 2 ProtoNets rounds over CurveZMQ, a new hospital adapts (acc $acc)"
