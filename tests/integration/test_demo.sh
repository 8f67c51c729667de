#!/usr/bin/env bash
# The short demo (DEMO_QUICK=1): five hospitals from WDBC, four train over
# CurveZMQ, the fifth (which never trained) joins a second coordinator
# session LIVE and is evaluated by its EvalTask. report.json must list all
# five hospitals, say every one was evaluated live, and carry sane numbers:
# accuracies and AUROCs in [0, 1] for the adapted, local-only and global
# models, the deterministic split's test sizes, and an adapted model well
# above chance everywhere. Model selection runs by default: the demo and
# report.json name the chosen setting, and the join session evaluated the
# winner's model. The demo must leave no process behind.
source "$(dirname "$0")/lib.sh"

DEMO_DIR=$TEST_TMP/demo DEMO_QUICK=1 METAFL_BIN=$BIN bash "$ROOT/deploy/demo.sh" \
  >"$TEST_TMP/demo.log" 2>&1 ||
  { tail -n 60 "$TEST_TMP/demo.log"; fail "make demo (quick) failed"; }
cat "$TEST_TMP/demo.log"
REPORT=$TEST_TMP/demo/report.json
[ -s "$REPORT" ] || fail "no report.json"
n=$(grep -c '"site":' "$REPORT")
[ "$n" -eq 5 ] || fail "report.json lists $n hospitals, expected 5"
grep -q '"rounds": 4,' "$REPORT" || fail "report.json does not say 4 rounds"
grep -q '"selection": {"rule": "auroc", "winner": [1-9]' "$REPORT" ||
  fail "report.json does not name the chosen setting"
grep -Eq '^    chosen: candidate [0-9]+, (mlp|linear):30-' "$TEST_TMP/demo.log" ||
  fail "the demo does not show the chosen setting"
grep -Eq '^model selection by mean validation auroc .* chosen: candidate [0-9]+, ' "$TEST_TMP/demo.log" ||
  fail "the demo's report does not show the chosen setting"
# hospital, its held-out patients (40% of its cases, stratified: fixed by
# the deterministic split in configs/demo/hospitals.tsv)
while read -r s n_test; do
  line=$(grep "\"site\": \"$s\"" "$REPORT") || fail "report.json misses $s"
  grep -q "\"n_test\": $n_test," <<<"$line" || fail "$s: expected n_test $n_test: $line"
  grep -q '"n_support": 20,' <<<"$line" || fail "$s: expected 20 support cases: $line"
done <<'EOF'
hospital-a 64
hospital-b 48
hospital-c 44
hospital-d 38
hospital-e 34
EOF
grep -q '"site": "hospital-e", "kind": "[^"]*", "role": "new"' "$REPORT" ||
  fail "the new hospital is not marked"

# The live path: every hospital, the new one included, was evaluated by a
# coordinator's EvalTask, not by the offline fallback...
# Federated feature scaling by default: every hospital opted in (its own
# config), the four training hospitals' fit rows were pooled, the report
# says the chosen setting used it, and the new hospital scaled with it.
for f in "$TEST_TMP"/demo/site-hospital-*.yaml "$TEST_TMP"/demo/coordinator*.yaml; do
  grep -q '^  standardize: federated$' "$f" || fail "$f does not opt in to federated scaling"
done
[ "$(ls "$TEST_TMP"/demo/site-hospital-*.yaml | wc -l)" -eq 5 ] || fail "expected 5 site configs"
grep -q '"scaling": {"kind": "federated", "sites": 4, "rows": [0-9]*, "chosen": "pooled"}' "$REPORT" ||
  fail "report.json does not say the model used the pooled scaling of 4 sites"
grep -A1 '^model selection by mean validation auroc .* chosen: candidate' "$TEST_TMP/demo.log" |
  grep -Eq "^feature scaling: the consortium's pooled mean and scale .* from 4 sites, [0-9]+ fit rows; the chosen setting uses it" ||
  fail "the demo's report does not show the scaling next to the chosen setting"
grep -q "site hospital-e: features scaled with the consortium's pooled mean and scale" \
  "$TEST_TMP/demo/logs/hospital-e.log" || fail "the new hospital did not scale with the pooled statistics"
live=$(grep -c '"evaluation": "live"' "$REPORT")
[ "$live" -eq 5 ] || { grep '"evaluation"' "$REPORT"; fail "$live of 5 hospitals evaluated live"; }
grep -q '"site": "hospital-e", [^}]*"evaluation": "live"' "$REPORT" ||
  fail "hospital-e was not evaluated live"
# ...and the join coordinator itself says so: its metrics hold the
# hospital's report, its log the wait and the evaluation.
grep -q '"event":"eval".*"site":"hospital-e"' "$TEST_TMP/demo/run-join/metrics.jsonl" ||
  fail "the join coordinator's metrics have no evaluation from hospital-e"
grep -q 'final evaluation after round 4 waits for sites: 0 connected, 1 needed' \
  "$TEST_TMP/demo/logs/coordinator-join.log" || fail "the join coordinator did not wait for the site"
grep -q 'eval after round 4, site hospital-e' "$TEST_TMP/demo/logs/coordinator-join.log" ||
  fail "the join coordinator logged no evaluation of hospital-e"
! grep -q 'adapting the published' "$TEST_TMP/demo.log" || fail "the demo took the offline fallback"

# Every metric is a number in [0, 1] (null would mean a missing score).
bad=$(grep -o '"\(accuracy\|auroc\)": [^,}]*' "$REPORT" |
      awk -F': ' '$2 == "null" || $2 + 0 < 0 || $2 + 0 > 1 { print }')
[ -z "$bad" ] || fail "metrics out of range: $bad"
m=$(grep -o '"\(accuracy\|auroc\)": [0-9.]*' "$REPORT" | wc -l)
[ "$m" -eq 30 ] || fail "expected 30 accuracy/AUROC values, found $m"
# WDBC is easy: an adapted model near chance means the pipeline is broken.
weak=$(grep -o '"adapted": {"accuracy": [0-9.]*, "auroc": [0-9.]*' "$REPORT" |
       awk -F'[:,] *' '$3 + 0 < 0.75 || $5 + 0 < 0.85 { print }')
[ -z "$weak" ] || fail "an adapted model is near chance: $weak"
[ "$(grep -c '"adapted": {"accuracy"' "$REPORT")" -eq 5 ] || fail "adapted scores missing"

# No metafl process started by the demo survives it.
if pgrep -f "$TEST_TMP/demo" >/dev/null; then
  pgrep -af "$TEST_TMP/demo"; fail "the demo left processes running"
fi
echo "ok"
