#!/usr/bin/env bash
# A per-patient time-series source (long CSV: patient, time, channels,
# event) federated over the real daemons: windows of 5 time points become
# examples labelled by an event anywhere in the window; three hospitals,
# two rounds and an evaluation (issue 13 item 1).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2
RUN=$TEST_TMP/run
sed -i 's|^  spec: .*|  spec: mlp:10-8-1|' "$TEST_TMP/coordinator.yaml"
i=0
for s in "${FED_SITES[@]}"; do
  # hr drifts up before an event; rows written newest first (order must not matter).
  awk -v seed=$((31 + i)) 'BEGIN { srand(seed); print "patient,minute,hr,sbp,event";
    for (p = 1; p <= 8; p++) for (t = 40; t >= 1; t--) {
      ev = (t % 10 == 0) ? 1 : 0; hr = 70 + 3 * (t % 10) + 5 * rand();
      printf "P%d,%d,%.2f,%.2f,%d\n", p, t, hr, 120 + 10 * rand(), ev } }' >"$TEST_TMP/data/$s.csv"
  cat >"$TEST_TMP/sites/$s.yaml" <<EOF2
site: {id: $s, key_file: ../keys/$s.key}
coordinator: {endpoint: "tcp://127.0.0.1:$FED_PORT", public_key: ../keys/coordinator.pub}
data:
  source: series
  path: ../data/$s.csv
  series:
    patient: patient
    time: minute
    channels: [hr, sbp]
    label: event
    rule: any
    window: 5
    stride: 5
  train_fraction: 0.75
audit: {log: ../run-$s/audit.log}
limits: {heartbeat_s: 0.5}
EOF2
  i=$((i + 1))
done
metafl-site-agent --config "$TEST_TMP/sites/site-a.yaml" --check >"$TEST_TMP/check.log" 2>&1 ||
  { cat "$TEST_TMP/check.log"; fail "--check failed on a series site"; }
cat "$TEST_TMP/check.log"
grep -q "320 rows read, 8 patients, 64 windows of 5 time points" "$TEST_TMP/check.log" ||
  fail "--check does not describe the windows"
grep -q "10 features" "$TEST_TMP/check.log" || fail "a window is not 5 time points x 2 channels"

fed_run_to_end
wait "$LAST_PID" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds"
for s in "${FED_SITES[@]}"; do
  grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$RUN/metrics.jsonl" || fail "no eval line for $s"
done
echo "ok: per-patient series windows federated for two rounds with an evaluation"
