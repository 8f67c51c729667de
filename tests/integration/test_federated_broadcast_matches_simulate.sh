#!/usr/bin/env bash
# Compressed broadcast (issue 17; docs/WIRE.md "Compressed broadcast"): the
# coordinator sends a site that holds the last round's model only the int8
# difference to it (rounds.broadcast_encoding). A
# site killed and restarted mid-run holds no model and gets it in full;
# the coordinator killed and restarted resumes θ̂ from its checkpoint and
# the sites, which kept theirs, get differences again. The daemons over
# CurveZMQ must still end with the same θ as `metafl simulate`, bit for
# bit; the audit log verifies; and fp16 or float32 broadcasts end elsewhere
# (the encoding took effect).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

ROUNDS=30
# mlp:3-64-64-1 (4,481 parameters) with more local steps, so the run lasts
# long enough to kill a site and the coordinator in the middle
# (float32 updates: a restarted site loses its fp16 / int8 residual, so
# with lossy updates a site restart changes the run)
fed_setup $ROUNDS "rounds.broadcast_encoding=int8" model.spec=mlp:3-64-64-1 algorithm.outer_steps=10 algorithm.inner_steps=10
RUN=$TEST_TMP/run
cd "$TEST_TMP" || fail "no test dir"

fed_coordinator
COORD=$LAST_PID
for s in site-a site-b; do fed_site "$s" --exit-after-eval; done
fed_site site-c
C1=$LAST_PID

rounds_at_least() { [ "$(fed_rounds_done "$RUN")" -ge "$1" ]; }
wait_for 30 rounds_at_least 2 || fail "no rounds completed"
kill -KILL "$C1"
wait "$C1" 2>/dev/null || true
fed_site site-c --exit-after-eval
C2_LOG=$TEST_TMP/site-c.log
at_site_kill=$(fed_rounds_done "$RUN")

wait_for 30 rounds_at_least $((at_site_kill + 3)) || fail "no rounds after the site's restart"
kill -KILL "$COORD"
wait "$COORD" 2>/dev/null || true
at_coord_kill=$(fed_rounds_done "$RUN")
echo "site-c restarted after $at_site_kill rounds, the coordinator after $at_coord_kill"
[ "$at_coord_kill" -lt $ROUNDS ] || fail "the run finished before the kill (too fast to test)"

start_bg coordinator2 metafl-coordinator --config "$TEST_TMP/coordinator.yaml"
COORD2=$LAST_PID
wait_for 90 bash -c "! kill -0 $COORD2 2>/dev/null" || fail "restarted coordinator did not finish"
wait "$COORD2" || fail "restarted coordinator exited with status $?"
grep -q "resumed from .*round-.*ckpt" "$TEST_TMP/coordinator2.log" ||
  fail "the restarted coordinator did not resume from a checkpoint"
[ "$(fed_rounds_done "$RUN")" -ge $ROUNDS ] || fail "expected $ROUNDS rounds in $RUN/metrics.jsonl"

# Who got what: site-a trained every round, from a difference in all but
# the first (and the round a resumed coordinator opens, if it could not
# know the site's model yet: none here, its Hello names it).
diffs_a=$(grep -c 'model sent as a int8 difference' "$TEST_TMP/site-a.log" || true)
echo "site-a: $diffs_a of $ROUNDS rounds as a difference"
[ "$diffs_a" -ge $((ROUNDS - 2)) ] || fail "site-a got only $diffs_a differences in $ROUNDS rounds"
# the restarted site-c: its first task again in full (it holds no model),
# differences afterwards, also after the coordinator's restart
first_c=$(grep -m1 -o 'round [0-9]*: .* on [0-9]* rows' "$C2_LOG" | grep -o 'round [0-9]*' | head -n 1)
[ -n "$first_c" ] || fail "the restarted site-c trained no round"
! grep -q "$first_c: model sent as a" "$C2_LOG" ||
  fail "the restarted site-c was sent a difference for its first task ($first_c)"
last_diff_c=$(grep 'model sent as a int8 difference' "$C2_LOG" | tail -n 1 | grep -o 'round [0-9]*' | grep -o '[0-9]*')
[ -n "$last_diff_c" ] && [ "$last_diff_c" -gt "$at_coord_kill" ] ||
  fail "the restarted site-c got no difference after the coordinator resumed"

metafl audit verify run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "audit log does not verify"; }
grep -q '"reason":"broadcast int8: model' run/audit.log ||
  fail "no round_opened record names the broadcast difference"

fed_expect_simulate_match "$RUN"

# The same run with an fp16 or a float32 broadcast ends elsewhere.
for enc in fp16 fp32; do
  sed -i "s/broadcast_encoding: .*/broadcast_encoding: $enc/" coordinator.yaml
  metafl simulate --config coordinator.yaml --run-dir "sim-$enc" >/dev/null 2>"sim-$enc.log" ||
    { cat "sim-$enc.log"; fail "simulate ($enc broadcast) failed"; }
  h=$(fed_final_hash "sim-$enc")
  [ -n "$h" ] && [ "$h" != "$sim_hash" ] ||
    fail "the $enc broadcast ended with the int8 one's θ ($h): nothing was compressed"
done
echo "ok: int8 broadcast, site and coordinator restarts; daemons and simulate agree ($sim_hash)"
