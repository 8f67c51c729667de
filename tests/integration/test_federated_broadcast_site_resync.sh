#!/usr/bin/env bash
# Compressed broadcast when the difference does not apply (docs/WIRE.md
# "Compressed broadcast", step 4), over the real daemons: the coordinator is
# trusted less than a site's own data, so a site checks the model it
# rebuilds against the task's model hash before training. site-c runs the
# real site agent with one bit of its held model flipped just before round
# 3's int8 difference arrives (build/tests/site_fault_site --fault
# corrupt-held: what a damaged base or a coordinator's bad difference looks
# like from the site). It must refuse the difference naming both digests,
# record the refusal on its own audit log (model_refused), ask for the
# model in full (SiteFailure.need_model), train round 3 from
# the model the task names, and take differences again in round 4; the
# coordinator must resend in full once, without counting a failure. The
# run ends with `metafl simulate`'s θ bit for bit (no site trained from a
# model other than θ̂) and the audit log verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${SITE_FAULT_SITE:-$ROOT/build/tests/site_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

fed_setup 4 "rounds.broadcast_encoding=int8"
cd "$TEST_TMP"
fed_coordinator
COORD=$LAST_PID
for s in site-a site-b; do fed_site "$s" --exit-after-eval; done
start_bg site-c "$FAULT_SITE" --config sites/site-c.yaml --fault corrupt-held --exit-after-eval
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the coordinator did not finish"
wait "$COORD" || { rc=$?; tail -n 20 coordinator.log; fail "the coordinator exited with status $rc"; }
[ "$(fed_rounds_done run)" -eq 4 ] || fail "expected 4 rounds"

grep -q 'TEST FAULT: one bit of the held model flipped' site-c.log ||
  fail "the fault did not fire (site-c held no model at round 3)"
grep -q 'round 3 refused: broadcast: the held model plus the difference hashes to [0-9a-f]*…, the task names [0-9a-f]*…; asking for the model in full' site-c.log ||
  { grep 'round 3' site-c.log; fail "site-c did not refuse the difference naming both digests"; }
grep -q '"kind":"model_refused","round":3,.*"reason":"broadcast: the held model plus the difference hashes to [0-9a-f]*\.\.\., the task names [0-9a-f]*\.\.\."' run-site-c/audit.log ||
  { grep model_refused run-site-c/audit.log; fail "site-c's audit log has no model_refused record of round 3"; }
[ "$(grep -c '"kind":"model_refused"' run-site-c/audit.log)" -eq 1 ] ||
  fail "site-c's audit log should hold exactly one model_refused record"
metafl audit verify run-site-c/audit.log --keys keys >verify-c.out 2>&1 ||
  { cat verify-c.out; fail "site-c's audit log does not verify"; }
grep -q 'round 3: site site-c could not apply the broadcast difference .*; sending the model in full' coordinator.log ||
  { grep 'round 3' coordinator.log; fail "the coordinator did not resend round 3 in full"; }
grep -q 'round 4: model sent as a int8 difference' site-c.log ||
  fail "site-c got no difference after it resynchronised"
python3 - run/metrics.jsonl <<'PY' || fail "a round did not fold all three sites"
import json, sys
rounds = [e for e in map(json.loads, open(sys.argv[1])) if e.get("event") == "round"]
assert [e["accepted"] for e in rounds] == [3, 3, 3, 3], rounds
PY
! grep -q '"kind":"site_failed".*"site":"site-c"' run/audit.log ||
  fail "the resend was counted as a site failure"
metafl audit verify run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "the audit log does not verify"; }
fed_expect_simulate_match run
echo "ok: a difference that does not rebuild the named model is refused, the model resent in full, θ = simulate"
