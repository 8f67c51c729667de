#!/usr/bin/env bash
# Upload flow control with real daemons over CURVE: three sites, one upload
# slot (rounds.max_concurrent_uploads: 1), a model whose Δ (80 kB) is over
# the small-update size (64 KiB, granted without a slot). Every site asks, is granted in
# turn and has its update accepted in every round; nobody's update is
# refused for a missing grant; the grants are in the coordinator's debug
# log, one per site per round.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "rounds.max_concurrent_uploads=1" "model.spec=mlp:3-4096-1"
RUN=$TEST_TMP/run
grep -q 'max_concurrent_uploads: 1' "$TEST_TMP/coordinator.yaml" || fail "config not rewritten"
grep -q 'spec: mlp:3-4096-1' "$TEST_TMP/coordinator.yaml" || fail "model not rewritten"

for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
fed_coordinator --log-level debug
COORD=$LAST_PID
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"

[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "expected 3 rounds in $RUN/metrics.jsonl"
for r in 1 2 3; do
  grep -q "\"event\":\"round\",\"round\":$r,.*\"accepted\":3" "$RUN/metrics.jsonl" ||
    fail "round $r did not accept all 3 updates"
done
grants=$(grep -c 'upload granted to site' "$TEST_TMP/coordinator.log")
[ "$grants" -eq 9 ] || fail "expected 9 grants (3 sites x 3 rounds), saw $grants"
# Never more than one in flight: each grant line says how many hold a slot.
if grep 'upload granted to site' "$TEST_TMP/coordinator.log" | grep -v '(1 in flight' >/dev/null; then
  grep 'upload granted' "$TEST_TMP/coordinator.log"
  fail "a grant was issued with more than one upload in flight"
fi
if grep -q 'REJECT_NOT_GRANTED' "$TEST_TMP/coordinator.log"; then
  fail "a well-behaved site's update was refused for a missing grant"
fi
for s in "${FED_SITES[@]}"; do
  [ "$(grep -c 'update sent' "$TEST_TMP/$s.log")" -eq 3 ] || fail "$s did not send 3 updates"
done
echo "ok: 3 sites, 1 upload slot, 3 rounds: all 9 updates granted in turn and accepted"
