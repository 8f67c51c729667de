#!/usr/bin/env bash
# The audit trail end to end: three site agents and the coordinator run two
# real rounds over CurveZMQ; every side's log must verify with
# `metafl audit verify`, the coordinator's must hold site-signed accepted
# updates that match the sites' own update_sent records (same Δ hash), and
# one flipped byte must make verify fail naming that record's line.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2
fed_run_to_end
[ "$(fed_rounds_done "$TEST_TMP/run")" -ge 2 ] || fail "fewer than 2 rounds closed"
for pid in "${_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true

LOG=$TEST_TMP/run/audit.log
[ -s "$LOG" ] || fail "no coordinator audit log at $LOG"
out=$(metafl audit verify "$LOG" --keys "$TEST_TMP/keys") || fail "coordinator log: $out"
echo "coordinator: $out"
case $out in ok:*"chain intact, all signatures valid"*) ;; *) fail "unexpected: $out" ;; esac
n_site=$(echo "$out" | sed -n 's/.*(\([0-9]*\) site update signatures checked).*/\1/p')
[ "${n_site:-0}" -ge 4 ] || fail "expected >= 4 site-signed accepted updates, got ${n_site:-0}"

for s in "${FED_SITES[@]}"; do
  slog=$TEST_TMP/run-$s/audit.log
  [ -s "$slog" ] || fail "no audit log for $s"
  sout=$(metafl audit verify "$slog" --keys "$TEST_TMP/keys") || fail "$s log: $sout"
  echo "$s: $sout"
  # Each update the coordinator accepted from this site is one the site
  # says it sent: the Δ hashes match across the two logs.
  for h in $(grep '"kind":"update_accepted"' "$LOG" | grep "\"site\":\"$s\"" |
             sed 's/.*"delta_hash":"\([0-9a-f]*\)".*/\1/'); do
    grep -q "\"kind\":\"update_sent\".*\"delta_hash\":\"$h\"" "$slog" ||
      fail "$s: accepted update $h is not in the site's own log"
  done
done

# Capture first: under pipefail, grep -q quitting at the first match can
# SIGPIPE a writer that is still printing, which reads as "not found".
shown=$(metafl audit show "$LOG") || fail "audit show failed"
grep -q "update_accepted" <<<"$shown" || fail "audit show lists no accepted update"

# Tamper: change one digit of the 3rd record's "n" (or its round) in a copy.
BAD=$TEST_TMP/tampered.log
awk 'NR == 3 { sub(/"round":[0-9]/, "\"round\":9") } { print }' "$LOG" >"$BAD"
! cmp -s "$LOG" "$BAD" || fail "tampering did not change the log"
if bout=$(metafl audit verify "$BAD" --keys "$TEST_TMP/keys" 2>&1); then
  fail "verify accepted a tampered log: $bout"
fi
echo "tampered: $bout"
case $bout in "$BAD:3: record 3: "*) ;; *) fail "verify did not name line 3: $bout" ;; esac
echo "ok"
