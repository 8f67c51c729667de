#!/usr/bin/env bash
# The health-monitoring application (issue 13 item 2) end to end, short:
# deploy/app.sh monitoring --quick converts r-cran-survival's pbcseq with
# Rscript into per-patient lab series at four hospitals, runs federated
# Relation networks over CurveZMQ (15 rounds: the quick value since the
# held-out split is by patient) at three of them, and the new hospital joins
# live and adapts; metafl report prints AUROC and sensitivity / specificity
# per hospital (the patients split itself: unit/test_site_data).
source "$(dirname "$0")/lib.sh"

command -v Rscript >/dev/null ||
  fail "Rscript not found: deploy/install-deps.sh installs r-base-core r-cran-survival"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$TEST_TMP/app
APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" monitoring --quick \
  >"$TEST_TMP/app.log" 2>&1 || { cat "$TEST_TMP/app.log"; fail "deploy/app.sh monitoring --quick failed"; }
R=$OUT/seed-1
# pbcseq: 312 patients, 1945 visits, dealt to four hospitals.
rows=$(cat "$OUT"/data/hospital-*.csv | grep -vc '^id,')
[ "$rows" -eq 1945 ] || fail "expected 1945 pbcseq visits, found $rows"
[ "$(grep -c '"event":"round"' "$R/run/metrics.jsonl")" -eq 15 ] || fail "expected 15 rounds"
for s in hospital-a hospital-b hospital-c; do
  grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$R/run/metrics.jsonl" || fail "no eval line for $s"
done
line=$(grep '"event":"eval".*"site":"hospital-new"' "$R/run-join/metrics.jsonl") ||
  fail "hospital-new did not report"
auroc=$(sed 's/.*"auroc":\([0-9.e-]*\),.*/\1/' <<<"$line")
# A binary early-warning label: AUROC is reported (not -1) and above chance.
awk -v a="$auroc" 'BEGIN { exit !(a > 0.6 && a <= 1) }' || fail "hospital-new AUROC $auroc is not above 0.6"
grep -q "evaluated live.*hospital-new" "$TEST_TMP/app.log" || { cat "$TEST_TMP/app.log"; fail "report does not say hospital-new was evaluated live"; }
# The early-warning operating point is reported: sensitivity at specificity
# 0.9, a rate in [0, 1], for the adapted and the local-only model.
sens=$(sed -n 's/.*"sens_at_spec90":\([0-9.e-]*\),.*/\1/p' <<<"$line")
awk -v a="$sens" 'BEGIN { exit !(a != "" && a >= 0 && a <= 1) }' || fail "hospital-new sens_at_spec90 '$sens' missing or not a rate"
grep -q '"sens_at_spec90_local":[0-9]' <<<"$line" || fail "no local-only sens_at_spec90 for hospital-new"
echo "ok: monitoring app: pbcseq at 4 hospitals, 15 Relation-network rounds over CurveZMQ, new hospital AUROC $auroc"
