#!/usr/bin/env bash
# One config run two ways: the real coordinator and three real site agents
# over CurveZMQ on 127.0.0.1, and `metafl simulate` with the same sites
# in-process. Both must end with the same θ, bit for bit (BLAKE2b of θ in
# the last metrics line), the model must improve, and the coordinator's
# audit log must verify (chain, its signatures, each site's signature).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 4
RUN=$TEST_TMP/run

# The run ends by itself: 4 rounds, a final evaluation, Bye to every site.
fed_run_exit_after_eval 50
[ "$(fed_rounds_done "$RUN")" -eq 4 ] || fail "expected 4 rounds in $RUN/metrics.jsonl"
grep -q '"event":"round","round":4,.*"accepted":3' "$RUN/metrics.jsonl" ||
  fail "round 4 did not have 3 accepted updates"
[ "$(grep -c '"event":"eval"' "$RUN/metrics.jsonl")" -eq 3 ] || fail "expected 3 eval reports"
grep -q 'round 4/4: 3/3 sites' "$TEST_TMP/coordinator.log" || fail "no progress line for round 4"

# The model improves: query loss after local training in the last round is
# below the loss of the initial θ in round 1 (both n-weighted over sites).
first=$(grep '"round":1,' "$RUN/metrics.jsonl" | head -n1 | sed 's/.*"loss_before":\([-0-9.e]*\).*/\1/')
last=$(grep '"event":"round","round":4,' "$RUN/metrics.jsonl" | sed 's/.*"loss_after":\([-0-9.e]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' ||
  fail "loss did not improve: round 1 before $first, round 4 after $last"

fed_expect_simulate_match "$RUN"
grep -q "$sim_hash" "$TEST_TMP/simulate.out" || fail "simulate did not print the final θ hash"

# Every accepted update and round is in the coordinator's signed audit log.
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.out" 2>&1 ||
  { cat "$TEST_TMP/verify.out"; fail "audit log does not verify"; }
[ "$(grep -c '"kind":"update_accepted"' "$RUN/audit.log")" -eq 12 ] ||
  fail "expected 12 update_accepted records"

# The status document says the run is done.
metafl status --run-dir "$RUN" >"$TEST_TMP/status.out" || fail "metafl status failed"
grep -q "done" "$TEST_TMP/status.out" || { cat "$TEST_TMP/status.out"; fail "status not done"; }
echo "ok: daemons and simulate agree on θ after 4 rounds ($sim_hash)"
