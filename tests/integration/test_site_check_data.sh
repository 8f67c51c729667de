#!/usr/bin/env bash
# `metafl-site-agent --check` says what loading the data did, per column
# (rows dropped, cells imputed: Pima-style data where 0 means missing in
# some columns only), and how many training rows each class has, warning
# when a class is too small for N-way K-shot episodes (issue 14 item 4,
# issue 13 item 4).
source "$(dirname "$0")/lib.sh"

cd "$TEST_TMP"
metafl keygen hospital-x --dir keys >/dev/null
metafl keygen coordinator --dir keys >/dev/null
# pregnancies may be 0; glucose 0 means missing; bmi "" is missing; 3 rows lack a label.
{
  echo "pregnancies,glucose,bmi,outcome"
  for i in $(seq 1 40); do
    g=$((80 + i)); [ $((i % 10)) -eq 0 ] && g=0
    b=$((20 + i % 7)); [ $((i % 13)) -eq 0 ] && b=""
    o=$((i % 2)); [ $((i % 17)) -eq 0 ] && o=""
    echo "$((i % 3)),$g,$b,$o"
  done
} >rows.csv
cat >schema.yaml <<'YAML'
header: true
missing: [""]
on_missing: impute
columns:
  - pregnancies
  - {name: glucose, missing: ["0"]}
  - bmi
  - {name: outcome, kind: label, rule: class, n_classes: 2}
YAML
cat >site.yaml <<'YAML'
site: {id: hospital-x, key_file: keys/hospital-x.key}
coordinator: {endpoint: "tcp://127.0.0.1:9", public_key: keys/coordinator.pub}
data: {path: rows.csv, schema: schema.yaml, train_fraction: 0.75}
audit: {log: audit/hospital-x.audit}
YAML
timeout 20 metafl-site-agent --config site.yaml --check >out.log 2>&1 || { cat out.log; fail "--check failed"; }
cat out.log
grep -q "40 rows read, 2 dropped for a missing value, 7 cells imputed (from training rows only)" out.log ||
  fail "--check does not total rows dropped and cells imputed"
grep -q "glucose: 0 rows dropped, 4 cells imputed" out.log || fail "--check lacks glucose's count"
grep -q "bmi: 0 rows dropped, 3 cells imputed" out.log || fail "--check lacks bmi's count"
grep -q "outcome: 2 rows dropped, 0 cells imputed" out.log || fail "--check lacks the label's drops"
grep -q "pregnancies:" out.log && fail "--check counts pregnancies' real zeros as missing"
grep -q "schema       .*schema.yaml" out.log || fail "--check does not name the schema file"
grep -Eq "classes      2; training rows per class: 0=[0-9]+ 1=[0-9]+" out.log ||
  fail "--check lacks the class counts"

# One positive row: too few for any episode.
awk -F, 'NR == 1 || $4 != "1" || !seen++' rows.csv >few.csv
sed 's/rows.csv/few.csv/' site.yaml >few.yaml
timeout 20 metafl-site-agent --config few.yaml --check >few.log 2>&1 || { cat few.log; fail "--check failed"; }
cat few.log
grep -q "1=1" few.log || fail "--check does not show the single positive row"
grep -q "warning: class counts this small cannot form N-way K-shot episodes" few.log ||
  fail "--check does not warn that the site cannot form episodes"
echo "ok: --check reports per-column drops and imputations and the class counts"
