#!/usr/bin/env bash
# Combinations of algorithm, model and data that make no sense are refused
# at Hello with a text that says why, over the real daemons (issue 13 item
# 3), and the combination that does make sense runs:
#   1. ProtoNets over a continuous (regression) label: no classes to compare;
#   2. FedAvg with a 2-output softmax head over a 3-class label: FedAvg
#      trains one head over every class;
#   3. the same head and data with MAML: 2-way episodes (the head sets N),
#      one round and an evaluation.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 1
cp "$TEST_TMP/coordinator.yaml" "$TEST_TMP/coordinator.base"
SITE=$TEST_TMP/sites/site-a.yaml
cp "$SITE" "$TEST_TMP/site-a.base"
# A 3-class label (x1's tertile) and a continuous one (x1 + x2), same rows.
awk -F, 'NR == 1 { print "x1,x2,x3,y"; next }
  { printf "%s,%s,%s,%d\n", $1, $2, $3, ($1 < -0.7) ? 0 : ($1 < 0.7) ? 1 : 2 }' \
  "$TEST_TMP/data/site-a.csv" >"$TEST_TMP/data/three.csv"
awk -F, 'NR == 1 { print "x1,x2,x3,y"; next } { printf "%s,%s,%s,%.4f\n", $1, $2, $3, $1 + $2 }' \
  "$TEST_TMP/data/site-a.csv" >"$TEST_TMP/data/cont.csv"

# case_configs NAME ALGO SPEC LOSS DATA LABEL: the configs of one case
# (3-shot episodes with 2 queries; run dir run-NAME).
case_configs() {
  sed -e "s|^  spec: .*|  spec: $3|" -e "s|^  loss: .*|  loss: $4|" -e "s|^  name: .*|  name: $2|" \
      -e "s|^  wait_for_sites: .*|  wait_for_sites: 1|" -e "s|^  min_sites: .*|  min_sites: 1|" \
      -e "s|^  run_dir: run|  run_dir: run-$1|" \
      "$TEST_TMP/coordinator.base" >"$TEST_TMP/coordinator.yaml"
  sed -i "s|^  name: $2|  name: $2\n  k_shot: 3\n  n_query: 2|" "$TEST_TMP/coordinator.yaml"
  sed -e "s|../data/site-a.csv|../data/$5|" -e "s|{name: y, kind: label.*}|$6|" \
      "$TEST_TMP/site-a.base" >"$SITE"
}

# refused NAME TEXT: the site agent stops with an error, both logs say TEXT.
refused() {
  fed_coordinator
  local coord=$LAST_PID
  fed_site site-a
  local site=$LAST_PID
  wait_for 20 bash -c "! kill -0 $site 2>/dev/null" || fail "$1: site-a kept running after the refusal"
  if wait "$site"; then fail "$1: site-a exited 0 after being refused"; fi
  grep -qF "$2" "$TEST_TMP/site-a.log" || { cat "$TEST_TMP/site-a.log"; fail "$1: site-a's log does not say '$2'"; }
  grep -qF "$2" "$TEST_TMP/coordinator.log" || fail "$1: the coordinator's log does not say '$2'"
  kill "$coord" 2>/dev/null || true
  wait "$coord" 2>/dev/null || true
}

case_configs regression protonet mlp:3-8 softmax_ce cont.csv "{name: y, kind: label, rule: regression}"
refused regression "a continuous (regression) label, but protonet compares a query with labelled examples of each class and needs a class label"

case_configs fedavg fedavg mlp:3-8-2 softmax_ce three.csv "{name: y, kind: label, rule: class, n_classes: 3}"
refused fedavg "3 classes, but the model mlp:3-8-2 has 2 outputs (softmax_ce needs one per class; fedavg trains one head over every class"

case_configs maml maml mlp:3-8-2 softmax_ce three.csv "{name: y, kind: label, rule: class, n_classes: 3}"
fed_coordinator
COORD=$LAST_PID
fed_site site-a --exit-after-eval
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "maml: the coordinator did not finish"
wait "$COORD" || { cat "$TEST_TMP/coordinator.log"; fail "maml: the coordinator failed"; }
[ "$(fed_rounds_done "$TEST_TMP/run-maml")" -eq 1 ] || fail "maml: expected 1 round"
line=$(grep '"event":"eval"' "$TEST_TMP/run-maml/metrics.jsonl") || fail "maml: no evaluation"
acc=$(sed 's/.*"accuracy":\([0-9.e-]*\),.*/\1/' <<<"$line")
# 2-way tasks of the site's three classes: an accuracy, not a refusal.
awk -v a="$acc" 'BEGIN { exit !(a > 0 && a <= 1) }' || fail "maml: accuracy '$acc'"
echo "ok: protonet on a regression label and fedavg with a narrow head refused with why; maml with it ran (2-way acc $acc)"
