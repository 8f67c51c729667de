#!/usr/bin/env bash
# Issue 10 item 11: a site that cannot train says so (SiteFailure with
# the reason) and the round stops waiting for it: it closes as soon as the
# other sites are in, instead of at its deadline. Here site-c's agent caps
# the model it accepts (limits.max_params: 10, a small hospital's memory
# limit) below the consortium's mlp:3-8-1 (41 parameters): it passes Hello
# and fails every task. The status shows the failure, each round's metrics
# line counts it, the audit log records it (site_failed) and verifies, and
# the final evaluation does not wait for site-c either.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "rounds.deadline_s=30" "eval.deadline_s=30"
RUN=$TEST_TMP/run
sed -i 's/^  heartbeat_s: 0.5$/  heartbeat_s: 0.5\n  max_params: 10/' "$TEST_TMP/sites/site-c.yaml"
grep -q "max_params: 10" "$TEST_TMP/sites/site-c.yaml" || fail "fixture: site-c.yaml not edited"

for s in "${FED_SITES[@]}"; do fed_site "$s"; done
fed_coordinator
COORD=$LAST_PID
start=$(date +%s)
wait_for 40 bash -c "[ \"\$(grep -c '\"event\":\"round\"' '$RUN/metrics.jsonl' 2>/dev/null)\" -ge 3 ]" ||
  fail "3 rounds did not close within 40 s (a 30 s deadline each if site-c is waited for)"
elapsed=$(( $(date +%s) - start ))
grep -q "could not tell the coordinator" "$TEST_TMP/site-c.log" && fail "site-c could not send its failure"
grep -q "round 1 refused: .*max_params" "$TEST_TMP/site-c.log" || fail "site-c did not fail as planned"
grep '"event":"round"' "$RUN/metrics.jsonl" | while read -r line; do
  grep -q '"at_deadline":false' <<<"$line" || fail "a round ran to its deadline: $line"
  grep -q '"accepted":2,"rejected":0,"failed":1' <<<"$line" || fail "metrics do not count the failure: $line"
done
grep -q "site site-c could not do its task: .*max_params" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator did not log site-c's reason"
wait_for 10 grep -q '"id":"site-c"[^}]*"failures":[1-9]' "$RUN/status.json" ||
  fail "status does not show site-c's failures: $(cat "$RUN/status.json")"
grep -q '"id":"site-c"[^}]*"last_failure":"[^"]*max_params' "$RUN/status.json" ||
  fail "status does not give site-c's reason"
wait_for 20 bash -c "! kill -0 $COORD 2>/dev/null" ||
  fail "the coordinator did not finish (the final evaluation waited for site-c?)"
wait "$COORD" || fail "coordinator exited non-zero"
n=$(grep -c '"kind":"site_failed"' "$RUN/audit.log")
[ "$n" -ge 3 ] || fail "expected >= 3 site_failed audit records, found $n"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.log" 2>&1 ||
  fail "audit log does not verify: $(cat "$TEST_TMP/verify.log")"
echo "3 rounds in ${elapsed}s with site-c failing each; status, metrics and audit say so"
