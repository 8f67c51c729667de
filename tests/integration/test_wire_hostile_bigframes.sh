#!/usr/bin/env bash
# Issue 10 item 3: ZMQ_MAXMSGSIZE caps one frame, not a message, and libzmq
# keeps every frame of a multipart message until its last one arrives: one
# message of many capped frames used to grow the coordinator's memory
# without bound (8 x 60 MiB frames: RSS 11 -> 491 MiB). Now the connection
# guard cuts a connection holding more than max_message_bytes + 4 MiB not
# yet taken by the coordinator. Here max_message_bytes is 16 MiB and the
# hostile site sends messages of 48 x 8 MiB frames (384 MiB each): the
# coordinator's peak RSS (VmHWM) must stay far below one such message.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
HOSTILE=${HOSTILE:-$ROOT/build/tests/hostile_site}
[ -x "$HOSTILE" ] || fail "$HOSTILE not built (make unit-tests)"

fed_setup 2 "limits.max_message_bytes=16M"
metafl keygen mallory --dir "$TEST_TMP/keys" >/dev/null
cp "$TEST_TMP/keys/mallory.pub" "$TEST_TMP/allow/"
fed_coordinator
COORD=$LAST_PID
wait_for 10 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start"
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$COORD/status"; }
before=$(hwm_kib)

"$HOSTILE" --endpoint "tcp://127.0.0.1:$FED_PORT" --key "$TEST_TMP/keys/mallory.key" \
  --server-pub "$TEST_TMP/keys/coordinator.pub" --mode bigframes --big-count 3 --frames 48 \
  --frame-bytes $((8 << 20)) --seconds 2 >"$TEST_TMP/hostile.log" 2>&1 || true
kill -0 "$COORD" || fail "the coordinator died"
after=$(hwm_kib)
echo "coordinator VmHWM: ${before} KiB before, ${after} KiB after 3 messages of 48 x 8 MiB frames"
[ "$after" -lt $((128 * 1024)) ] || fail "coordinator peak RSS ${after} KiB: the per-connection bound did not hold"
grep -q "connection cut: .* over the per-connection bound" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator did not say it cut the connection"
echo "per-connection bound held"
