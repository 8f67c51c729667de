#!/usr/bin/env bash
# The coordinator's decisions do not follow the wall clock (issue 10,
# item 7): with its CLOCK_REALTIME stepped +120 s and then -3600 s in the
# middle of a round (an LD_PRELOAD shim, tests/integration/clockshift.c;
# the monotonic clock runs on), a round waiting for a frozen site neither
# closes early nor declares the live sites gone, status.json keeps being
# rewritten, and the round closes at its deadline, measured on the
# monotonic clock.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

SHIM=$TEST_TMP/clockshift.so
cc -shared -fPIC -O1 -o "$SHIM" "$ROOT/tests/integration/clockshift.c" -ldl ||
  fail "cannot build the clock shim"
SHIFT=$TEST_TMP/clockshift
echo 0 >"$SHIFT"

fed_setup 2 rounds.deadline_s=8
RUN=$TEST_TMP/run
mkdir -p "$RUN" && chmod 700 "$RUN"
printf 'pause' >"$RUN/control"
start_bg coordinator env LD_PRELOAD="$SHIM" MFL_CLOCKSHIFT_FILE="$SHIFT" \
  metafl-coordinator --config "$TEST_TMP/coordinator.yaml"
COORD=$LAST_PID
fed_site site-a --exit-after-eval
fed_site site-b --exit-after-eval
fed_site site-c
C_PID=$LAST_PID
connected3() { [ "$(grep -o '"connected":true' "$RUN/status.json" 2>/dev/null | wc -l)" -eq 3 ]; }
wait_for 20 connected3 || fail "three sites never connected"

kill -STOP "$C_PID" # round 1 waits for site-c until its deadline
metafl status --run-dir "$RUN" --resume >/dev/null || fail "metafl status --resume failed"
opened() { grep -q '"phase":"round"' "$RUN/status.json" 2>/dev/null; }
wait_for 10 opened || fail "round 1 did not open"
t0=$(date +%s%N)

echo 120 >"$SHIFT" # +2 min: on the wall clock the 8 s deadline is long past
sleep 2
[ "$(fed_rounds_done "$RUN")" -eq 0 ] || fail "a +120 s wall-clock step closed the round early"
grep -q "considered gone" "$TEST_TMP/coordinator.log" &&
  fail "a +120 s wall-clock step declared sites gone"

echo -3600 >"$SHIFT" # -1 h: on the wall clock the deadline is an hour away
u1=$(sed -n 's/.*"updated_unix_ms":\([0-9]*\).*/\1/p' "$RUN/status.json")
rewritten() { u2=$(sed -n 's/.*"updated_unix_ms":\([0-9]*\).*/\1/p' "$RUN/status.json");
              [ -n "$u2" ] && [ "$u2" != "$u1" ]; }
wait_for 5 rewritten || fail "status.json froze after a -3600 s wall-clock step"
closed() { [ "$(fed_rounds_done "$RUN")" -ge 1 ]; }
wait_for 20 closed || fail "round 1 did not close at its deadline after a -3600 s step"
elapsed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "round 1 closed ${elapsed_ms} ms after it opened (deadline 8000 ms, monotonic)"
# t0 is when status first showed the round (up to a status period after it
# opened): 5 s is a safe lower bound; a wall-clock-driven close came at ~2 s.
[ "$elapsed_ms" -ge 5000 ] || fail "closed after ${elapsed_ms} ms, before its deadline"
grep -q '"round":1,.*"accepted":2,.*"at_deadline":true' "$RUN/metrics.jsonl" ||
  fail "round 1 did not close at the deadline with the two live sites"
kill -KILL "$C_PID"
echo "ok: wall-clock steps of +120 s and -3600 s changed no decision"
