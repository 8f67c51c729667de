#!/usr/bin/env bash
# Issue 10 item 1: an allow-listed site that stops reading its socket while
# it keeps sending bad messages (Rejects pile up on its connection), then
# hangs up, must not end the coordinator. With ZMTP heartbeats on the
# ROUTER this aborted libzmq 4.3.4 (`Assertion failed: !_io_error
# (src/stream_engine_base.cpp:331)`); the coordinator now keeps liveness at
# the application level only. Three rounds of abuse, heartbeat_s 1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
HOSTILE=${HOSTILE:-$ROOT/build/tests/hostile_site}
[ -x "$HOSTILE" ] || fail "$HOSTILE not built (make unit-tests)"

fed_setup 2 "limits.heartbeat_s=1"
metafl keygen mallory --dir "$TEST_TMP/keys" >/dev/null
cp "$TEST_TMP/keys/mallory.pub" "$TEST_TMP/allow/"
fed_coordinator
COORD=$LAST_PID
wait_for 10 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start"

H=("$HOSTILE" --endpoint "tcp://127.0.0.1:$FED_PORT" --key "$TEST_TMP/keys/mallory.key"
   --server-pub "$TEST_TMP/keys/coordinator.pub")
for i in 1 2 3; do
  # The hostile client pings with ZMTP heartbeats itself; when the
  # coordinator cuts it, its own libzmq may abort on the same bug: its exit
  # status is not the point.
  "${H[@]}" --mode noread --seconds 3 --zmtp-heartbeat-ms 1000 >>"$TEST_TMP/hostile.log" 2>&1 || true
  sleep 2   # the hang-up and the heartbeat timers play out meanwhile
  kill -0 "$COORD" 2>/dev/null || fail "the coordinator died after hostile round $i"
done
if grep -q "Assertion failed" "$TEST_TMP/coordinator.log"; then fail "libzmq assertion in the coordinator's log"; fi
# Still serving: a reading client gets its Reject back.
"${H[@]}" --mode probe --seconds 1 >"$TEST_TMP/probe.log" 2>&1 || fail "probe failed"
grep -q "replies [1-9]" "$TEST_TMP/probe.log" || fail "the coordinator no longer answers: $(cat "$TEST_TMP/probe.log")"
kill -0 "$COORD" || fail "the coordinator died"
echo "coordinator survived 3 rounds of a non-reading, hanging-up hostile site"
