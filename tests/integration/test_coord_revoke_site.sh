#!/usr/bin/env bash
# Issue 10 item 8: revoking a connected site ends its session and its place
# in the open round at once. site-c is frozen (SIGSTOP: connected, silent)
# so the open round waits for it (30 s deadline, 60 s site timeout); the
# operator runs `metafl sites revoke site-c`: the round closes within
# seconds with the two others, site-c is recorded (site_revoked) and shown
# revoked, and after it wakes up its reconnections are refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 60 "rounds.deadline_s=30" "limits.site_timeout_s=60"
RUN=$TEST_TMP/run
CFG=$TEST_TMP/coordinator.yaml
metafl sites --help | grep "revoke NAME" >/dev/null || fail "metafl sites --help does not explain revoke"
out=$(metafl sites revoke 2>&1) && fail "revoke without NAME succeeded"
grep -q "NAME is required" <<<"$out" || fail "revoke without NAME: $out"

# site-c joins first and is frozen once welcomed; then the others join,
# round 1 opens with all three and waits for site-c.
fed_coordinator
COORD=$LAST_PID
fed_site site-c
SITE_C=$LAST_PID
trap 'rc=$?; kill -CONT "$SITE_C" 2>/dev/null; (exit $rc); _cleanup' EXIT
wait_for 20 grep -q "welcomed by coordinator" "$TEST_TMP/site-c.log" || fail "site-c was not welcomed"
kill -STOP "$SITE_C"
fed_site site-a
fed_site site-b
wait_for 20 grep -q '"phase":"round"' "$RUN/status.json" || fail "round 1 did not open"
sleep 1
before=$(fed_rounds_done "$RUN")
[ "$before" -eq 0 ] || fail "round 1 closed without site-c"

metafl sites --config "$CFG" >"$TEST_TMP/sites-before.txt" || fail "metafl sites failed"
grep -qE "^site-c +yes +connected" "$TEST_TMP/sites-before.txt" ||
  fail "site-c not listed as connected: $(cat "$TEST_TMP/sites-before.txt")"

t0=$(date +%s%N)
metafl sites revoke site-c --config "$CFG" >"$TEST_TMP/revoke.txt" 2>&1 ||
  fail "revoke failed: $(cat "$TEST_TMP/revoke.txt")"
[ -f "$TEST_TMP/allow/revoked/site-c.pub" ] && [ ! -f "$TEST_TMP/allow/site-c.pub" ] ||
  fail "site-c.pub was not moved out of the allow-list"
wait_for 10 grep -q "site site-c: revoked" "$TEST_TMP/coordinator.log" || fail "no revocation in the log"
wait_for 10 bash -c "[ \"\$(grep -c '\"event\":\"round\"' '$RUN/metrics.jsonl')\" -ge $((before + 1)) ]" ||
  fail "the round waiting for site-c did not close after the revocation"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -CONT "$SITE_C"
# site-c's connection was closed: it redials and ZAP refuses it (60 rounds
# keep the coordinator busy long enough to see it).
wait_for 20 grep -q "refused connection from .* not in the allow-list" "$TEST_TMP/coordinator.log" ||
  fail "site-c's reconnection was not refused"
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the run did not finish without site-c"
wait "$COORD" || fail "coordinator exited non-zero"
grep '"event":"round"' "$RUN/metrics.jsonl" | tail -n +$((before + 1)) | while read -r line; do
  grep -q '"at_deadline":false' <<<"$line" || fail "a round after the revocation ran to its deadline: $line"
done
grep -q '"kind":"site_revoked".*"site":"site-c"\|"site":"site-c".*"kind":"site_revoked"' "$RUN/audit.log" ||
  fail "no site_revoked record for site-c"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null || fail "audit log does not verify"
metafl sites --config "$CFG" >"$TEST_TMP/sites-after.txt" || fail "metafl sites failed"
grep -qE "^site-c +no +revoked" "$TEST_TMP/sites-after.txt" ||
  fail "site-c not listed as revoked: $(cat "$TEST_TMP/sites-after.txt")"
metafl sites --config "$CFG" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert any(s["site"]=="site-c" and s["state"]=="revoked" for s in d["sites"])' ||
  fail "metafl sites --json does not show site-c revoked"
echo "site-c revoked: round closed ${ms} ms after the command; recorded, listed, refused"
