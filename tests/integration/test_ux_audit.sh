#!/usr/bin/env bash
# The auditor's view, as the messages they rely on: `metafl audit show`
# labels its columns and ends with a legend saying it checks form only;
# `metafl audit verify` on a tampered copy says the log is NOT intact, from
# which record, and what to do; with a --keys dir lacking a key it says the
# failure is not a verdict on the log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2
fed_run_to_end
LOG=$TEST_TMP/run/audit.log
SLOG=$TEST_TMP/run-site-a/audit.log
cd "$TEST_TMP"

out=$(metafl audit show "$LOG") || fail "show: $out"
echo "$out"
head -n 1 <<<"$out" | grep "seq .*round .*site .*kind .*norm .*hash .*note" >/dev/null ||
  fail "show header lacks columns"
total=$(grep -c . "$LOG")
grep -q "^$total of $total records shown, rounds 1..2" <<<"$out" || fail "show count line"
grep -q "checks each record's" <<<"$out" || fail "show does not say it checks form only"
out=$(metafl audit show "$SLOG" --round 2) || fail "show --round: $out"
# Round 2 at the site: its update_sent and the coordinator's chain head it
# received with the task (peer_head, issue 10 item 8).
grep -q "^2 of .* records shown, rounds 2..2" <<<"$out" || fail "show --round count line"

for f in "$LOG" "$SLOG"; do
  metafl audit verify "$f" --keys keys | grep "^ok: " >/dev/null || fail "$f does not verify"
done

# One flipped byte inside record 3's hash-covered content.
BAD=$TEST_TMP/tampered.log
awk 'NR == 3 { sub(/"n":[0-9]/, "\"n\":9") } { print }' "$LOG" >"$BAD"
cmp -s "$LOG" "$BAD" && fail "tamper did not change the copy"
rc=0
metafl audit verify "$BAD" --keys keys >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "tampered log verified (exit $rc)"
grep -q "tampered.log:3: record 3" out.log || fail "bad record not named"
grep -q "is NOT intact: record 3 (line 3) fails" out.log || fail "no verdict line"
grep -q "compare with the other side's log" out.log || fail "no advice"

mkdir nokeys
rc=0
metafl audit verify "$LOG" --keys nokeys >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "verify without keys passed"
grep -q "not a verdict on the log" out.log || fail "missing key mistaken for tampering"
grep -q "NOT intact" out.log && fail "missing key reported as a broken log"
echo "ok"
