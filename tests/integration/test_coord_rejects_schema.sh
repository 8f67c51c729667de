#!/usr/bin/env bash
# An allow-listed hospital whose data has another schema (4 features where
# the consortium has 3) is refused at Hello with REJECT_SCHEMA and a text
# that says what to fix; the agent stops (retrying cannot help); the
# coordinator keeps serving the other three and completes the run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3
RUN=$TEST_TMP/run
mkdir -p "$RUN" && chmod 700 "$RUN"
printf 'pause' >"$RUN/control"

# site-d: admitted key, but a fourth column.
metafl keygen site-d --dir "$TEST_TMP/keys" >/dev/null
cp "$TEST_TMP/keys/site-d.pub" "$TEST_TMP/allow/"
mkdir -p "$TEST_TMP/run-site-d"
awk 'BEGIN { srand(5); print "x1,x2,x3,x4,y";
  for (i = 0; i < 120; i++) printf "%.3f,%.3f,%.3f,%.3f,%d\n", rand(), rand(), rand(), rand(), i % 2 }' \
  >"$TEST_TMP/data/site-d.csv"
sed -e 's/site-c/site-d/g' -e 's/^      - x3$/      - x3\n      - x4/' \
  "$TEST_TMP/sites/site-c.yaml" >"$TEST_TMP/sites/site-d.yaml"
grep -q 'x4' "$TEST_TMP/sites/site-d.yaml" || fail "could not write site-d's schema"

fed_coordinator
COORD=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
connected3() { [ "$(grep -o '"connected":true' "$RUN/status.json" 2>/dev/null | wc -l)" -eq 3 ]; }
wait_for 20 connected3 || fail "three sites never connected"

fed_site site-d
D_PID=$LAST_PID
wait_for 20 bash -c "! kill -0 $D_PID 2>/dev/null" || fail "site-d kept running after the refusal"
if wait "$D_PID"; then fail "site-d exited 0 after being refused"; fi
grep -q 'REJECT_SCHEMA' "$TEST_TMP/site-d.log" || fail "site-d's log does not name REJECT_SCHEMA"
grep -q 'refused Hello: site site-d: its data schema differs' "$TEST_TMP/coordinator.log" ||
  fail "coordinator log does not explain the refusal"

metafl status --run-dir "$RUN" --resume >/dev/null || fail "resume failed"
wait_for 40 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "expected 3 rounds"
grep -q 'site-d' "$RUN/status.json" && fail "site-d appears among the coordinator's sites"
grep -q '"site":"site-d"' "$RUN/audit.log" && fail "site-d appears in the audit log"
echo "ok: site-d refused with REJECT_SCHEMA, run completed with the other three"
