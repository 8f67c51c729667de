#!/usr/bin/env bash
# Model selection survives a coordinator crash (issue 16, "simulate =
# daemons = resume"): the coordinator is SIGKILLed in the middle of the
# selection (site-c leaves after its third update, so candidate 2's second
# round waits for it), restarted, runs the selection again from the first
# candidate, picks the same winner and ends with the same θ as `metafl
# simulate`, bit for bit (rounds.min_sites 3: without site-c no round can
# close, so the kill always lands inside candidate 2). A second restart of the finished run finds the
# winner on record (selection.state) and does nothing again; an edited
# selection section is refused against that record.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "rounds.min_sites=3"
echo >>"$TEST_TMP/coordinator.yaml"  # the rewriter leaves no final newline
cat >>"$TEST_TMP/coordinator.yaml" <<'EOF'
selection:
  enabled: true
  rounds: 2
  candidates:
    - {inner_lr: 0.000001, server_lr: 0.000001}
    - {}
    - {model: "linear:3-1"}
EOF
RUN=$TEST_TMP/run
metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/ref" \
  >/dev/null 2>"$TEST_TMP/simulate.log" || fail "reference simulate failed"
ref_hash=$(fed_final_hash "$TEST_TMP/ref")

fed_coordinator
COORD=$LAST_PID
fed_site site-a --exit-after-eval
fed_site site-b --exit-after-eval
fed_site site-c --max-rounds 3
SITE_C=$LAST_PID
wait_for 30 bash -c "! kill -0 $SITE_C 2>/dev/null" || fail "site-c did not stop after 3 updates"
kill -KILL "$COORD"
wait "$COORD" 2>/dev/null || true
grep -q '"event":"selection_candidate","candidate":1,' "$RUN/metrics.jsonl" ||
  fail "candidate 1 was not scored before the kill"
grep -q '"event":"selection",' "$RUN/metrics.jsonl" && fail "the selection ended before the kill"
[ ! -e "$RUN/checkpoints/selection.state" ] || fail "a winner on record before the kill"

start_bg coordinator2 metafl-coordinator --config "$TEST_TMP/coordinator.yaml"
COORD2=$LAST_PID
fed_site site-c --exit-after-eval
wait_for 60 bash -c "! kill -0 $COORD2 2>/dev/null" || fail "restarted coordinator did not finish"
wait "$COORD2" || fail "restarted coordinator exited with status $?"
grep -q "model selection: 3 candidates" "$TEST_TMP/coordinator2.log" ||
  fail "the restart did not run the selection again"
final=$(fed_final_hash "$RUN")
echo "resumed:  $final"
echo "simulate: $ref_hash"
[ -n "$final" ] && [ "$final" = "$ref_hash" ] || fail "θ after the crash differs from simulate"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
  fail "audit log does not verify after the crash"
grep -q '^metafl-selection-v1 winner=1 ' "$RUN/checkpoints/selection.state" ||
  fail "selection.state does not record candidate 2 (index 1)"

# A finished run restarted: the winner comes from the record, nothing reruns.
metafl-coordinator --config "$TEST_TMP/coordinator.yaml" >"$TEST_TMP/coordinator3.log" 2>&1 &
COORD3=$!
wait_for 20 bash -c "! kill -0 $COORD3 2>/dev/null" || fail "finished run did not exit at once"
wait "$COORD3" || fail "restart of the finished run failed"
grep -q "model selection: candidate 2 .* won earlier" "$TEST_TMP/coordinator3.log" ||
  fail "the restart did not take the winner from the record"
grep -q "selection round" "$TEST_TMP/coordinator3.log" && fail "selection ran again"

# The record binds the selection: an edited candidate list is refused.
sed -i 's/model: "linear:3-1"/model: "linear:3-1", inner_steps: 2/' "$TEST_TMP/coordinator.yaml"
metafl-coordinator --config "$TEST_TMP/coordinator.yaml" >"$TEST_TMP/coordinator4.log" 2>&1 &&
  fail "an edited selection section was accepted over the recorded one"
grep -q "selection.state: records a selection with other candidates" "$TEST_TMP/coordinator4.log" ||
  fail "the refusal does not say why: $(tail -2 "$TEST_TMP/coordinator4.log")"
echo "ok: selection rerun after SIGKILL, same winner and θ; the record binds restarts"
