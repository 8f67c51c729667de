#!/usr/bin/env bash
# The coordinator killed with SIGKILL mid-run and restarted resumes from its
# latest checkpoint, the sites reconnect by themselves, and the final θ
# equals an uninterrupted run with the same seed, bit for bit (the
# reference is `metafl simulate`, which test_federated_simulate_matches_
# daemons.sh shows equal to an uninterrupted daemon run). The audit log,
# with a record possibly torn by the kill, still verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

ROUNDS=40
# A larger model and more local steps so the run lasts long enough to be
# killed in the middle (about a second or two).
fed_setup $ROUNDS model.spec=mlp:3-64-64-1 algorithm.outer_steps=10 algorithm.inner_steps=10
RUN=$TEST_TMP/run

metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/ref" \
  >/dev/null 2>"$TEST_TMP/simulate.log" || fail "reference simulate failed"
ref_hash=$(fed_final_hash "$TEST_TMP/ref")

fed_coordinator
COORD=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done

some_rounds() { [ "$(fed_rounds_done "$RUN")" -ge 3 ]; }
wait_for 30 some_rounds || fail "no rounds completed"
kill -KILL "$COORD"
wait "$COORD" 2>/dev/null || true
done_at_kill=$(fed_rounds_done "$RUN")
echo "killed the coordinator after $done_at_kill rounds"
[ "$done_at_kill" -lt $ROUNDS ] || fail "the run finished before the kill (too fast to test)"

start_bg coordinator2 metafl-coordinator --config "$TEST_TMP/coordinator.yaml"
COORD2=$LAST_PID
wait_for 60 bash -c "! kill -0 $COORD2 2>/dev/null" || fail "restarted coordinator did not finish"
wait "$COORD2" || fail "restarted coordinator exited with status $?"
grep -q "resumed from .*round-.*ckpt: [0-9]* of $ROUNDS rounds done" "$TEST_TMP/coordinator2.log" ||
  fail "the restarted coordinator did not resume from a checkpoint"

final=$(fed_final_hash "$RUN")
echo "resumed:       $final"
echo "uninterrupted: $ref_hash"
[ -n "$final" ] && [ "$final" = "$ref_hash" ] || fail "θ after resume differs from the uninterrupted run"
grep -q "\"round\":$ROUNDS," "$RUN/metrics.jsonl" || fail "round $ROUNDS missing"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.out" 2>&1 ||
  { cat "$TEST_TMP/verify.out"; fail "audit log does not verify after the crash"; }
echo "ok: resumed after SIGKILL at round $done_at_kill; final θ equals the uninterrupted run"
