#!/usr/bin/env bash
# `metafl status` as an operator watches a run: --pause before the very
# first start (no run dir yet) stages a paused start; an open round shows
# how long it has been open, its deadline, who reported and who is pending;
# the run's end is estimated once a round has closed; --watch repeats
# until the run is over and exits by itself; a completed run reads
# "finished", without the "NOT RUNNING ... start again to resume" advice.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "rounds.deadline_s=4"
CFG=$TEST_TMP/coordinator.yaml
RUN=$TEST_TMP/run
cd "$TEST_TMP"

[ -e "$RUN" ] && fail "run dir exists before the first start"
metafl status --config "$CFG" --pause >out.log 2>&1 || { cat out.log; fail "--pause before the first start"; }
grep -q "first start will wait, paused" out.log || fail "unclear: $(cat out.log)"
[ "$(stat -c %a "$RUN")" = 700 ] || fail "run dir not created 0700"

fed_coordinator
COORD=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s"; done
SITE_C=$LAST_PID
three() { [ "$(grep -o '"connected":true' "$RUN/status.json" | wc -l)" -eq 3 ]; }
wait_for 20 three || fail "sites did not connect"
metafl status --config "$CFG" | grep "paused before round 1" >/dev/null || fail "not paused before round 1"
# --watch from here (paused: nothing can finish before --resume) to the end.
metafl status --config "$CFG" --watch 0.5 >watch.log 2>&1 &
WATCH=$!
_PIDS+=("$WATCH")

# site-c freezes: the round waits for it until its deadline.
kill -STOP "$SITE_C"
metafl status --config "$CFG" --resume >/dev/null || fail "--resume"
pending() { metafl status --config "$CFG" >st.txt && grep -q "this round: 2 reported (site-a, site-b), 1 pending (site-c)" st.txt; }
wait_for 20 pending || { cat st.txt; fail "reported/pending not shown"; }
cat st.txt
grep -Eq "^  round 1 open for [0-9.]+ s \(attempt 1\); deadline in [0-9.]+ s$" st.txt || fail "no round clock"
grep -q "site-c .*(in this round: pending)" st.txt || fail "site-c not marked pending"
grep -q "site-a .*(in this round: reported)" st.txt || fail "site-a not marked reported"

# Round 1 closes at its deadline with 2 of 3; round 2 waits for site-c
# again, and now the end can be estimated.
eta() { metafl status --config "$CFG" >st.txt && grep -q "run ends in about" st.txt; }
wait_for 20 eta || { cat st.txt; fail "no end estimate after a closed round"; }
grep -Eq "run ends in about [0-9.]+ s \([0-9:]+\), estimated from the last round's duration" st.txt ||
  fail "estimate unclear: $(grep 'run ends' st.txt)"

kill -CONT "$SITE_C"
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait_for 10 bash -c "! kill -0 $WATCH 2>/dev/null" || fail "--watch did not stop when the run ended"
wait "$WATCH" || fail "--watch exited with an error: $(tail -5 watch.log)"
[ "$(grep -c '^--- ' watch.log)" -ge 2 ] || fail "--watch showed the status only once"
grep -q "paused before round 1" watch.log || fail "--watch did not show the paused start"
tail -n 12 watch.log | grep "finished, 3 of 3 rounds done" >/dev/null || fail "--watch did not end on the finished run"

metafl status --config "$CFG" >final.txt || fail "status after the run"
cat final.txt
grep -q "finished, 3 of 3 rounds done" final.txt || fail "a completed run is not 'finished'"
grep -q "NOT RUNNING" final.txt && fail "a completed run is reported as NOT RUNNING"
grep -q "run ends in" final.txt && fail "an end estimate for a finished run"
metafl status --config "$CFG" --watch 0.1 >/dev/null 2>&1 && fail "--watch 0.1 accepted"
echo ok
