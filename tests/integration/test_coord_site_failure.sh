#!/usr/bin/env bash
# Issue 10 item 11: a site whose local training fails says so (SiteFailure
# with the reason) and the round stops waiting for it: it closes as soon as
# the other sites are in, instead of at its deadline. Here site-c's data
# has only 3 rows of class 1, too few for a 2-way protonet episode of
# k_shot + n_query = 6 rows per class, so it fails every round. The status
# shows the failure, each round's metrics line counts it, the audit log
# records it (site_failed) and still verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "model.spec=mlp:3-8-4" "model.loss=softmax_ce" "algorithm.name=protonet" \
  "algorithm.n_way=2" "algorithm.k_shot=3" "algorithm.n_query=3" "rounds.deadline_s=30"
RUN=$TEST_TMP/run
# site-c: all class-0 rows plus three of class 1.
awk -F, 'NR == 1 || $4 == 0 || (c < 3 && $4 == 1 && ++c)' "$TEST_TMP/data/site-c.csv" >"$TEST_TMP/c.csv"
mv "$TEST_TMP/c.csv" "$TEST_TMP/data/site-c.csv"

for s in "${FED_SITES[@]}"; do fed_site "$s"; done
fed_coordinator
COORD=$LAST_PID
start=$(date +%s)
wait_for 40 bash -c "[ \"\$(grep -c '\"event\":\"round\"' '$RUN/metrics.jsonl' 2>/dev/null)\" -ge 3 ]" ||
  fail "3 rounds did not close within 40 s (a 30 s deadline each if site-c is waited for)"
elapsed=$(( $(date +%s) - start ))
grep -q "could not tell the coordinator" "$TEST_TMP/site-c.log" && fail "site-c could not send its failure"
grep -q "round 1 failed: .*episodes" "$TEST_TMP/site-c.log" || fail "site-c did not fail as planned"
grep '"event":"round"' "$RUN/metrics.jsonl" | while read -r line; do
  echo "$line" | grep -q '"at_deadline":false' || fail "a round ran to its deadline: $line"
  echo "$line" | grep -q '"accepted":2,"rejected":0,"failed":1' || fail "metrics do not count the failure: $line"
done
grep -q "site site-c could not do its task: .*episodes" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator did not log site-c's reason"
wait_for 10 grep -q '"id":"site-c"[^}]*"failures":[1-9]' "$RUN/status.json" ||
  fail "status does not show site-c's failures: $(cat "$RUN/status.json")"
grep -q '"id":"site-c"[^}]*"last_failure":"[^"]*episodes' "$RUN/status.json" ||
  fail "status does not give site-c's reason"
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the coordinator did not finish"
wait "$COORD" || fail "coordinator exited non-zero"
n=$(grep -c '"kind":"site_failed"' "$RUN/audit.log")
[ "$n" -ge 3 ] || fail "expected >= 3 site_failed audit records, found $n"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.log" 2>&1 ||
  fail "audit log does not verify: $(cat "$TEST_TMP/verify.log")"
echo "3 rounds in ${elapsed}s with site-c failing each; status, metrics and audit say so"
