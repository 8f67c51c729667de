#!/usr/bin/env bash
# Robust aggregation through the real daemons (issue 10, item 15): the
# coordinator with server.aggregator: median and rounds.norm_action: clip
# (a bound every real update exceeds, so each is clipped), three real site
# agents over CurveZMQ. The run completes, every accepted update's record
# says it was clipped, the audit log verifies, and `metafl simulate` with
# the same config ends with the same θ bit for bit (the robust rules work
# in site-id order, so arrival order does not matter).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 server.aggregator=median rounds.norm_bound=0.05 rounds.norm_action=clip
RUN=$TEST_TMP/run
fed_coordinator
COORD=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
wait_for 50 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "expected 3 rounds"
grep -q '"event":"round","round":3,.*"accepted":3' "$RUN/metrics.jsonl" ||
  fail "round 3 did not have 3 accepted updates"
n_acc=$(grep -c '"kind":"update_accepted"' "$RUN/audit.log")
n_clip=$(grep '"kind":"update_accepted"' "$RUN/audit.log" | grep -c 'clipped from norm')
[ "$n_acc" -eq 9 ] && [ "$n_clip" -eq 9 ] ||
  fail "expected 9 accepted updates, all clipped; got $n_acc accepted, $n_clip clipped"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
  fail "audit log does not verify"

daemon_hash=$(fed_final_hash "$RUN")
metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/sim" \
  >"$TEST_TMP/simulate.out" 2>"$TEST_TMP/simulate.log" || fail "simulate failed"
sim_hash=$(fed_final_hash "$TEST_TMP/sim")
echo "daemons:  $daemon_hash"
echo "simulate: $sim_hash"
[ -n "$daemon_hash" ] && [ "$daemon_hash" = "$sim_hash" ] ||
  fail "final θ differs: daemons $daemon_hash, simulate $sim_hash"
echo "ok: median + clipping through the daemons: 3 rounds, 9 clipped updates on record, θ equals simulate's"
