#!/usr/bin/env bash
# A site dies holding its task: the round closes at the deadline with
# min_sites (2 of 3), the run goes on, and the restarted site rejoins (it
# gets the open round's task again on Hello) and finishes the run.
#
# Deterministic staging: the coordinator starts paused (control file), so
# no round opens until all three sites are connected and site-c is frozen
# (SIGSTOP); then it resumes, sends round 1 to all three, and site-c never
# answers; it is killed with SIGKILL after the deadline closed round 1.
# θ is 1 MB (mlp:3-50000-1), more than a stopped reader's socket takes, so
# site-c stops reading in the middle of round 1's broadcast: the rest of it
# waits in the coordinator's send queue for site-c's connection (checked),
# and neither the other sites' round nor site-c's death is held up by it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 4 rounds.deadline_s=3 model.spec=mlp:3-50000-1
RUN=$TEST_TMP/run
mkdir -p "$RUN" && chmod 700 "$RUN"
printf 'pause' >"$RUN/control"

fed_coordinator
COORD=$LAST_PID
fed_site site-a --exit-after-eval
fed_site site-b --exit-after-eval
fed_site site-c
C_PID=$LAST_PID

connected3() { [ "$(grep -o '"connected":true' "$RUN/status.json" 2>/dev/null | wc -l)" -eq 3 ]; }
wait_for 20 connected3 || fail "three sites never connected"
grep -q '"paused":true' "$RUN/status.json" || fail "coordinator did not start paused"
[ "$(fed_rounds_done "$RUN")" -eq 0 ] || fail "a round ran while paused"

kill -STOP "$C_PID"
metafl status --run-dir "$RUN" --resume >/dev/null || fail "metafl status --resume failed"

# Bytes of θ queued in the coordinator's end of site-c's connection (ss
# Send-Q): site-c stopped reading mid-broadcast.
c_send_q() {
  local cport
  cport=$(ss -Htnp state established "( dport = :$FED_PORT )" | grep "pid=$C_PID," |
    awk '{ n = split($3, a, ":"); print a[n] }')
  [ -n "$cport" ] || return 1
  ss -Htn state established "( sport = :$FED_PORT and dport = :$cport )" | awk '{ print $2 }'
}
stuck_mid_broadcast() { [ "$(c_send_q)" -gt 65536 ]; }
wait_for 20 stuck_mid_broadcast ||
  fail "round 1's broadcast is not held up at site-c (Send-Q $(c_send_q || echo '?'))"
echo "site-c stopped reading mid-broadcast: $(c_send_q) bytes of θ queued for it"

deadline_closed() { grep -q '"round":1,.*"accepted":2,.*"at_deadline":true' "$RUN/metrics.jsonl" 2>/dev/null; }
wait_for 20 deadline_closed || fail "round 1 did not close at the deadline with 2 sites"
grep -q 'round 1/4: 2/3 sites.*closed at the deadline' "$TEST_TMP/coordinator.log" ||
  fail "no progress line for the deadline close"
kill -KILL "$C_PID"

# The run goes on; site-c comes back and is given its task again.
fed_site site-c --exit-after-eval
rejoined() { grep -q '"accepted":3' "$RUN/metrics.jsonl" 2>/dev/null; }
wait_for 30 rejoined || fail "site-c never contributed after its restart"
grep -q 'update sent' "$TEST_TMP/site-c.log" || fail "restarted site-c sent no update"

wait_for 40 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 4 ] || fail "expected 4 rounds"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
  fail "audit log does not verify"
echo "ok: deadline close with 2/3, site-c rejoined, 4 rounds done"
