#!/usr/bin/env bash
# Truncation shows across the two sides' logs (issue 10, item 8): after a
# real 4-round run over CurveZMQ each site holds the coordinator's signed
# chain heads (peer_head records) and the coordinator holds each site's
# (inside the signed update headers it keeps). A log with its newest
# records cut off still verifies on its own; `metafl audit verify --cross`
# with both sides' logs names it TRUNCATED. A site agent without an audit
# log refuses to start unless its config says audit.disabled: true.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 4
fed_run_to_end
[ "$(fed_rounds_done "$TEST_TMP/run")" -eq 4 ] || fail "expected 4 rounds"
for pid in "${_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true

K=$TEST_TMP/keys
LOG=$TEST_TMP/run/audit.log
SA=$TEST_TMP/run-site-a/audit.log
grep -q '"kind":"peer_head"' "$SA" || fail "site-a recorded no coordinator head"
out=$(metafl audit verify "$LOG" "$SA" "$TEST_TMP/run-site-b/audit.log" --keys "$K" --cross) ||
  fail "intact logs do not cross-check: $out"
echo "$out"
grep -q "agree" <<<"$out" || fail "no cross-check verdict: $out"

# The coordinator's log cut to its first half: verifies alone, not against
# site-a's.
CUT=$TEST_TMP/coord-cut.log
head -n $(( $(wc -l <"$LOG") / 2 )) "$LOG" >"$CUT"
metafl audit verify "$CUT" --keys "$K" >/dev/null || fail "a cut log should verify on its own"
if bout=$(metafl audit verify "$CUT" "$SA" --keys "$K" --cross 2>&1); then
  fail "--cross accepted a truncated coordinator log: $bout"
fi
echo "cut coordinator log: $bout"
grep -q "coord-cut.log is TRUNCATED" <<<"$bout" || fail "the verdict does not name the cut log"
grep -q "site-a" <<<"$bout" || fail "the verdict does not say whose record proves it"

# site-a's log cut to its first half: the coordinator holds its later heads.
SCUT=$TEST_TMP/site-a-cut.log
head -n $(( $(wc -l <"$SA") / 2 )) "$SA" >"$SCUT"
metafl audit verify "$SCUT" --keys "$K" >/dev/null || fail "a cut site log should verify alone"
if bout=$(metafl audit verify "$LOG" "$SCUT" --keys "$K" --cross 2>&1); then
  fail "--cross accepted a truncated site log: $bout"
fi
echo "cut site log: $bout"
grep -q "site-a-cut.log is TRUNCATED" <<<"$bout" || fail "the verdict does not name the cut site log"

# A site agent without audit.log refuses to run; audit.disabled: true lets it.
NOAUDIT=$TEST_TMP/sites/site-a-noaudit.yaml
grep -v '^audit:\|^  log: ../run-site-a' "$TEST_TMP/sites/site-a.yaml" >"$NOAUDIT"
rc=0
timeout 20 metafl-site-agent --config "$NOAUDIT" >"$TEST_TMP/noaudit.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$TEST_TMP/noaudit.log"; fail "expected exit 1 without an audit log, got $rc"; }
grep -q "audit.log is not set" "$TEST_TMP/noaudit.log" || fail "the refusal does not say why"
printf 'audit:\n  disabled: true\n' >>"$NOAUDIT"
timeout 20 metafl-site-agent --config "$NOAUDIT" --check >"$TEST_TMP/noaudit-check.log" 2>&1 ||
  { cat "$TEST_TMP/noaudit-check.log"; fail "--check failed with audit.disabled: true"; }
echo "ok: truncation of either side named by --cross; a site needs an audit log or an explicit opt-out"
