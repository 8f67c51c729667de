#!/usr/bin/env bash
# What an operator sees when they stop a run on purpose:
# - `metafl status --abort`: status says "aborted by operator" (not a
#   failure), the coordinator's audit log holds a run_aborted record and
#   still verifies (`ok: N records`), and the abort is logged at info;
# - SIGTERM to a (restarted, resumed) coordinator: every connected site is
#   told Bye, so its log says "coordinator stopped" instead of only losing
#   the connection, and the coordinator exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 200 "rounds.wait_for_sites=2" "rounds.min_sites=2"
CFG=$TEST_TMP/coordinator.yaml
RUN=$TEST_TMP/run
cd "$TEST_TMP"

fed_coordinator
C_PID=$LAST_PID
fed_site site-a
A_PID=$LAST_PID
fed_site site-b
B_PID=$LAST_PID
some_rounds() { [ "$(fed_rounds_done "$RUN")" -ge 1 ]; }
wait_for 30 some_rounds || fail "no round completed"

out=$(metafl status --config "$CFG" --abort) || fail "--abort: $out"
grep -q "took 'abort'" <<<"$out" || fail "--abort not confirmed: $out"
wait_for 20 bash -c "! kill -0 $C_PID 2>/dev/null" || fail "coordinator did not stop on abort"
rc=0; wait "$C_PID" || rc=$?
[ "$rc" -eq 1 ] || fail "aborted coordinator exited $rc, want 1 (run not finished)"

grep -q '"phase":"aborted"' "$RUN/status.json" || fail "status.json phase is not 'aborted'"
out=$(metafl status --config "$CFG" || true)
echo "$out"
grep -q ": aborted by operator after [0-9]* of 200 rounds" <<<"$out" ||
  fail "status does not say the operator aborted"
grep -qi "fail" <<<"$out" && fail "an abort is shown as a failure: $out"
grep -q ", 0 updates rejected" <<<"$out" || fail "late updates after the abort counted as rejections"
grep -q "coordinator info: run aborted by the operator after" coordinator.log ||
  fail "abort not logged at info"
grep -q "coordinator warn: .*abort" coordinator.log && fail "abort logged as a warning"

out=$(metafl audit verify "$RUN/audit.log" --keys keys) || fail "audit verify: $out"
grep -q "^ok: [0-9]* records, chain intact" <<<"$out" || fail "audit verify: $out"
# Capture first: under pipefail, grep -q quitting at the first match can
# SIGPIPE a writer that is still printing, which reads as "not found".
shown=$(metafl audit show "$RUN/audit.log") || fail "audit show failed"
grep -q "run_aborted" <<<"$shown" || fail "no run_aborted record"
grep -c '"kind":"run_aborted"' "$RUN/audit.log" | grep -x 1 >/dev/null || fail "want one run_aborted record"
# An abort is refused once the run is over.
metafl status --config "$CFG" --abort >abort2.out 2>&1 && fail "second --abort accepted"
grep -q "nothing sent" abort2.out || fail "second --abort: $(cat abort2.out)"

# Restart: resumes from the last checkpoint; then SIGTERM.
rm -f "$RUN/status.json"
fed_coordinator
C_PID=$LAST_PID
wait_for 20 grep -q "resumed from" coordinator.log || fail "restart did not resume"
both_back() { [ "$(grep -o '"connected":true' "$RUN/status.json" 2>/dev/null | wc -l)" -eq 2 ]; }
wait_for 30 both_back || fail "sites did not rejoin the restarted coordinator"
kill -TERM "$C_PID"
rc=0; wait "$C_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "coordinator exited $rc on SIGTERM, want 0"
for s in site-a site-b; do
  wait_for 10 grep -q "coordinator said bye (coordinator stopped" "$s.log" ||
    fail "$s was not told the coordinator stopped"
done
kill -0 "$A_PID" "$B_PID" || fail "a site exited on Bye (it should wait for a restart)"
echo "ok: abort shown and audited as an operator abort; SIGTERM says bye to the sites"
