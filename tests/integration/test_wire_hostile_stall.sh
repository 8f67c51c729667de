#!/usr/bin/env bash
# Issue 10 item 2: one peer that never reads must not delay another site's
# reply. A non-reading allow-listed site floods the coordinator with bad
# messages (so Rejects to it pile up: before, every send to it blocked the
# coordinator's only thread up to ZMQ_SNDTIMEO, 5 s); meanwhile a second
# site measures how long its own Rejects take to come back. Generous bound
# (2 s) for a loaded machine: the old code took 5-8 s.
# runner: alone (a latency bound: tests/run-tests.sh runs it with no other test)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
HOSTILE=${HOSTILE:-$ROOT/build/tests/hostile_site}
[ -x "$HOSTILE" ] || fail "$HOSTILE not built (make unit-tests)"

fed_setup 2
for k in mallory prober; do
  metafl keygen $k --dir "$TEST_TMP/keys" >/dev/null
  cp "$TEST_TMP/keys/$k.pub" "$TEST_TMP/allow/"
done
fed_coordinator
COORD=$LAST_PID
wait_for 10 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start"
h() { "$HOSTILE" --endpoint "tcp://127.0.0.1:$FED_PORT" --key "$TEST_TMP/keys/$1.key" \
        --server-pub "$TEST_TMP/keys/coordinator.pub" "${@:2}"; }

h mallory --mode noread --seconds 8 >"$TEST_TMP/mallory.log" 2>&1 &
MAL=$!
_PIDS+=("$MAL")
# mallory's flood has reached the coordinator before the prober starts
wait_for 20 grep -q "rejected message" "$TEST_TMP/coordinator.log" ||
  fail "mallory's bad messages never reached the coordinator"
h prober --mode probe --seconds 6 >"$TEST_TMP/probe.log" 2>&1 || fail "probe failed"
wait "$MAL" || true
kill -0 "$COORD" || fail "the coordinator died"
cat "$TEST_TMP/probe.log"
worst=$(sed -n 's/.*max_reply_ms \([0-9]*\).*/\1/p' "$TEST_TMP/probe.log")
replies=$(sed -n 's/.*replies \([0-9]*\).*/\1/p' "$TEST_TMP/probe.log")
[ -n "$worst" ] && [ "${replies:-0}" -ge 10 ] || fail "the prober got too few replies: $(cat "$TEST_TMP/probe.log")"
[ "$worst" -lt 2000 ] || fail "another site's reply took ${worst} ms while a peer did not read"
echo "prober's slowest reply ${worst} ms while mallory did not read"
