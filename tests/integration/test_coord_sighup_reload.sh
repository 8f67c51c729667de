#!/usr/bin/env bash
# An operator admits a new hospital without restarting the coordinator:
# site-c's key is not in the allow-list at start, so its agent is refused
# and the first round (waiting for three sites) cannot open; the operator
# copies site-c.pub into the allow-list and sends SIGHUP; the coordinator
# logs who is admitted now, site-c's redial gets through and the run
# completes. The agent was started first and never restarted: it redials
# by itself after the refusal.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2
RUN=$TEST_TMP/run
rm "$TEST_TMP/allow/site-c.pub"

fed_coordinator
COORD=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
wait_for 20 grep -q "refused connection from .* not in the allow-list" "$TEST_TMP/coordinator.log" ||
  fail "site-c was not refused while its key was missing from the allow-list"
[ "$(fed_rounds_done "$RUN")" -eq 0 ] || fail "a round ran without the third site"

cp "$TEST_TMP/keys/site-c.pub" "$TEST_TMP/allow/"
kill -HUP "$COORD"
wait_for 10 grep -q "allow-list reloaded from .*3 site(s) admitted.*site-c" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator did not log the reloaded allow-list naming site-c"
kill -0 "$COORD" || fail "SIGHUP stopped the coordinator"

wait_for 60 bash -c "[ \"\$(grep -c '\"event\":\"round\"' '$RUN/metrics.jsonl' 2>/dev/null)\" -ge 2 ]" ||
  fail "the run did not complete after site-c was admitted"
grep '"event":"round"' "$RUN/metrics.jsonl" | tail -n 1 | grep '"accepted":3' >/dev/null ||
  fail "site-c did not take part in the last round"
wait_for 30 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited non-zero"
echo "SIGHUP admitted site-c without a restart; the run completed with 3 sites"
