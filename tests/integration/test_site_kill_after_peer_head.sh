#!/usr/bin/env bash
# A site's peer_head record (the coordinator's signed audit head) is
# appended without a sync of its own: the same round's update_sent record,
# synced before the update leaves, makes it durable (docs/AUDIT.md,
# "Crashes"). This kills a site with SIGKILL right after it wrote that
# record, while it trains (before its update_sent record and its update):
# the record is in its log (written at once: a process crash loses
# nothing), the log verifies, the restarted site is given the task again
# and the run finishes; every head the coordinator holds of the site is in
# the site's log (`verify --cross`: nothing the coordinator acknowledged is
# lost), and the final θ equals an uninterrupted run bit for bit (the
# reference is `metafl simulate`).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

ROUNDS=2
# Local training long enough (≈ 0.1 s per site and round on a quiet machine) to kill the
# site between its peer_head record and its update_sent record.
fed_setup $ROUNDS model.spec=mlp:3-64-64-1 algorithm.outer_steps=10 algorithm.inner_steps=100
RUN=$TEST_TMP/run
SLOG=$TEST_TMP/run-site-c/audit.log

metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/ref" \
  >/dev/null 2>"$TEST_TMP/simulate.log" || fail "reference simulate failed"
ref_hash=$(fed_final_hash "$TEST_TMP/ref")

fed_coordinator
COORD=$LAST_PID
fed_site site-a --exit-after-eval
fed_site site-b --exit-after-eval
fed_site site-c
C_PID=$LAST_PID

# The moment: site-c's log ends with its peer_head of round 1. Watched
# without starting a process per look (on a loaded machine, or with other
# tests running beside this one, a tail | grep could take longer than the
# training window): the log is read line by line from one open descriptor,
# and the pause between looks is a read with a timeout on a FIFO that
# nobody writes.
mkfifo "$TEST_TMP/tick"
exec 8<>"$TEST_TMP/tick"
wait_for 30 test -e "$SLOG" || fail "site-c never opened its audit log"
exec 7<"$SLOG"
deadline=$((SECONDS + 30))
part=
while :; do
  if IFS= read -r line <&7; then
    line=$part$line part=
    case $line in *'"kind":"peer_head","round":1,'*) kill -KILL "$C_PID"; break ;; esac
  else
    part=$part$line # a line still being written
    [ $SECONDS -lt $deadline ] || fail "site-c never recorded the coordinator's head of round 1"
    read -r -t 0.005 -u 8 _ || true
  fi
done
exec 7<&- 8<&-
wait "$C_PID" 2>/dev/null || true
tail -n 1 "$SLOG" | grep '"kind":"peer_head","round":1,' >/dev/null ||
  fail "site-c wrote more after its peer_head before the kill landed (training too fast to test)"
grep -q '"kind":"update_sent"' "$SLOG" && fail "site-c sent an update before the kill"
metafl audit verify "$SLOG" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify-c.out" 2>&1 ||
  { cat "$TEST_TMP/verify-c.out"; fail "site-c's log does not verify after SIGKILL"; }

fed_site site-c --exit-after-eval
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq $ROUNDS ] || fail "expected $ROUNDS rounds"
grep -q '"round":1,.*"accepted":3' "$RUN/metrics.jsonl" ||
  fail "round 1 closed without the restarted site-c's update"
[ "$(grep -c '"kind":"update_sent","round":1,' "$SLOG")" -eq 1 ] ||
  fail "site-c's log should hold one update_sent record of round 1"

final=$(fed_final_hash "$RUN")
[ -n "$final" ] && [ "$final" = "$ref_hash" ] ||
  fail "final θ $final differs from the uninterrupted run's $ref_hash"
metafl audit verify "$RUN/audit.log" "$TEST_TMP"/run-site-*/audit.log --keys "$TEST_TMP/keys" \
  --cross >"$TEST_TMP/cross.out" 2>&1 ||
  { cat "$TEST_TMP/cross.out"; fail "the logs do not cross-verify after the kill"; }
echo "ok: site killed after its lazy peer_head record; log verifies, run resumed bit-identical, --cross ok"
