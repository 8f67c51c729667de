#!/usr/bin/env bash
# The short demo (DEMO_QUICK=1): five hospitals from WDBC, four train over
# CurveZMQ, the fifth adapts; report.json must list all five hospitals with
# accuracies and AUROCs in [0, 1] for the adapted, local-only and global
# models, and the demo must leave no process behind.
source "$(dirname "$0")/lib.sh"

DEMO_DIR=$TEST_TMP/demo DEMO_QUICK=1 bash "$ROOT/deploy/demo.sh" >"$TEST_TMP/demo.log" 2>&1 ||
  { tail -n 60 "$TEST_TMP/demo.log"; fail "make demo (quick) failed"; }
cat "$TEST_TMP/demo.log"
REPORT=$TEST_TMP/demo/report.json
[ -s "$REPORT" ] || fail "no report.json"
n=$(grep -c '"site":' "$REPORT")
[ "$n" -eq 5 ] || fail "report.json lists $n hospitals, expected 5"
for s in hospital-a hospital-b hospital-c hospital-d hospital-e; do
  grep -q "\"site\": \"$s\"" "$REPORT" || fail "report.json misses $s"
done
grep -q '"role": "new"' "$REPORT" || fail "the new hospital is not marked"
# Every metric is a number in [0, 1] (null would mean a missing score).
bad=$(grep -o '"\(accuracy\|auroc\)": [^,}]*' "$REPORT" |
      awk -F': ' '$2 == "null" || $2 + 0 < 0 || $2 + 0 > 1 { print }')
[ -z "$bad" ] || fail "metrics out of range: $bad"
m=$(grep -o '"\(accuracy\|auroc\)": [0-9.]*' "$REPORT" | wc -l)
[ "$m" -eq 30 ] || fail "expected 30 accuracy/AUROC values, found $m"
# No metafl process started by the demo survives it.
if pgrep -f "$TEST_TMP/demo" >/dev/null; then
  pgrep -af "$TEST_TMP/demo"; fail "the demo left processes running"
fi
echo "ok"
