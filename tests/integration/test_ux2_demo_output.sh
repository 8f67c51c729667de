#!/usr/bin/env bash
# The demo's wording, as a reader of its output relies on it: each round
# line says which loss it shows (mean query loss at θ -> after local
# meta-training), the results table calls its size column "held-out", and
# the audit step prints one clean line per log (N records, M site-signed
# updates, singular for one) and a summary instead of the verifier's raw
# message. (test_demo.sh checks the numbers in report.json.)
source "$(dirname "$0")/lib.sh"

DEMO_DIR=$TEST_TMP/demo DEMO_QUICK=1 METAFL_BIN=$BIN bash "$ROOT/deploy/demo.sh" \
  >"$TEST_TMP/demo.log" 2>&1 ||
  { tail -n 60 "$TEST_TMP/demo.log"; fail "make demo (quick) failed"; }
out=$TEST_TMP/demo.log
grep -Eq "^    round   1/4: 4 hospitals, mean query loss [0-9.]+ at θ -> [0-9.]+ after local meta-training$" "$out" ||
  fail "round line does not say what its loss is"
grep -q "site loss" "$out" && fail "the unexplained 'site loss' wording is back"
grep -q "query loss: the hospitals' mean loss on each task's query cases" "$out" ||
  fail "the query loss is not explained"
grep -Eq "^  hospital +role +k held-out \| adapted meta" "$out" || fail "no 'held-out' column"
grep -Eq "^    coordinator ok +[0-9]+ records, +[0-9]+ site-signed updates checked" "$out" ||
  fail "coordinator audit line not summarised"
grep -Eq "^    hospital-e  ok +1 record, +0 site-signed updates checked  \(joined after training" "$out" ||
  fail "hospital-e audit line not summarised (singular 'record')"
grep -q "chain intact, all signatures valid" "$out" && fail "raw verifier message printed"
grep -q "^    all 6 logs: hash chains intact, every record signed by its writer$" "$out" ||
  fail "no audit summary line"
echo "ok"
