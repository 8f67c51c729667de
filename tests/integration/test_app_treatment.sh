#!/usr/bin/env bash
# The treatment-matching application (issue 13 item 2) end to end, short:
# deploy/app.sh treatment --quick converts r-cran-survival's colon trial
# with Rscript into patients at four hospitals (label = arm × 3-year
# outcome), runs federated Matching networks over CurveZMQ (2 rounds) at
# three of them, and the new hospital joins live; every hospital reports
# the held-out policy value of the arms its matched patients recommend,
# beside giving everyone the best arm and the arms the trial gave. A site
# whose label does not fit its eval.treatment_arms is refused at --check.
source "$(dirname "$0")/lib.sh"

command -v Rscript >/dev/null ||
  fail "Rscript not found: deploy/install-deps.sh installs r-base-core r-cran-survival"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$TEST_TMP/app
APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" treatment --quick \
  >"$TEST_TMP/app.log" 2>&1 || { cat "$TEST_TMP/app.log"; fail "deploy/app.sh treatment --quick failed"; }
R=$OUT/seed-1
# colon: 929 patients; 909 have a known 3-year recurrence outcome.
rows=$(cat "$OUT"/data/hospital-*.csv | grep -vc '^id,')
[ "$rows" -eq 909 ] || fail "expected 909 colon patients with a 3-year outcome, found $rows"
[ "$(grep -c '"event":"round"' "$R/run/metrics.jsonl")" -eq 2 ] || fail "expected 2 rounds"
for s in hospital-a hospital-b hospital-c hospital-new; do
  f=$R/run/metrics.jsonl
  [ "$s" = hospital-new ] && f=$R/run-join/metrics.jsonl
  line=$(grep "\"event\":\"eval\".*\"site\":\"$s\"" "$f") || fail "no eval line for $s"
  # Each policy value is a good-outcome rate in [0, 1] (-1 would mean none).
  python3 - "$s" "$line" <<'PY' || fail "bad policy values for $s: $line"
import json, sys
d = json.loads(sys.argv[2])
keys = ["policy_value", "policy_value_before", "policy_value_local",
        "policy_value_best_arm", "policy_value_given"]
assert all(0 < d[k] <= 1 for k in keys), d
# Matching adapts nothing: the model as received is the model scored.
assert d["policy_value"] == d["policy_value_before"], d
PY
done
# metafl report adds a table of the policy values (five numbers per hospital).
grep -Eq '^  hospital-new +\| +0\.[0-9]{3} +0\.[0-9]{3} +0\.[0-9]{3} \| +0\.[0-9]{3} +0\.[0-9]{3}$' "$TEST_TMP/app.log" ||
  { cat "$TEST_TMP/app.log"; fail "metafl report shows no policy values for hospital-new"; }
grep -q "evaluated live.*hospital-new" "$TEST_TMP/app.log" || { cat "$TEST_TMP/app.log"; fail "report does not say hospital-new was evaluated live"; }

# Two arms declared for a 6-class (3-arm) label: refused before connecting.
sed 's/treatment_arms: 3/treatment_arms: 2/' "$R/site-hospital-a.yaml" >"$R/site-bad.yaml"
(cd "$R" && "$BIN/metafl-site-agent" --config site-bad.yaml --check) >"$TEST_TMP/check.log" 2>&1 &&
  fail "--check accepted eval.treatment_arms 2 for a 6-class label"
grep -q "treatment_arms 2 needs a label of 4 classes.*the data has 6" "$TEST_TMP/check.log" ||
  { cat "$TEST_TMP/check.log"; fail "--check did not say why treatment_arms 2 is refused"; }
echo "ok: treatment app: colon at 4 hospitals, 2 Matching rounds over CurveZMQ, policy values at every hospital"
