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
fed_run_exit_after_eval 50
[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "expected 3 rounds"
grep -q '"event":"round","round":3,.*"accepted":3' "$RUN/metrics.jsonl" ||
  fail "round 3 did not have 3 accepted updates"
n_acc=$(grep -c '"kind":"update_accepted"' "$RUN/audit.log")
n_clip=$(grep '"kind":"update_accepted"' "$RUN/audit.log" | grep -c 'clipped from norm')
[ "$n_acc" -eq 9 ] && [ "$n_clip" -eq 9 ] ||
  fail "expected 9 accepted updates, all clipped; got $n_acc accepted, $n_clip clipped"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
  fail "audit log does not verify"

fed_expect_simulate_match "$RUN"
echo "ok: median + clipping through the daemons: 3 rounds, 9 clipped updates on record, θ equals simulate's"
