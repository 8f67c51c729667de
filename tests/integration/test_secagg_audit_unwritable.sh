#!/usr/bin/env bash
# Secure aggregation when the coordinator's audit log cannot be written
# (docs/SECAGG.md, "Over the daemons"): the coordinator's file-size limit
# (RLIMIT_FSIZE, set with prlimit on the running process, SIGXFSZ ignored)
# is lowered to the log's size, so the next append fails with EFBIG, as on a
# full volume (a tmpfs would still take a few records in the log's last
# page). Three sites, threshold 3; site-c holds its masked input (a test
# fault) until the limit is in place. Its secagg_masked
# record cannot be written, so its masked input is refused
# (REJECT_AUDIT_UNAVAILABLE) and NOT folded into the attempt's sum: no sum
# is unmasked, no round closes, θ stays. Once space is freed the attempt is
# abandoned (two masked inputs < t), the round is retried with a new nonce
# and the run ends with the θ `metafl simulate` gets, every masked input in
# a sum on record, the log verifying.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${SECAGG_FAULT_SITE:-$ROOT/build/tests/secagg_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

fed_secagg_setup 1 rounds.min_sites=3 rounds.deadline_s=4
cd "$TEST_TMP"
cp coordinator.yaml sim.yaml
printf 'output:\n  audit_give_up_s: 120\n' >>coordinator.yaml
fed_simulate sim.yaml
want=$sim_hash
RUN=$TEST_TMP/run
LOG=$RUN/audit.log

trap '' XFSZ # inherited: a write past the limit fails with EFBIG instead of killing
fed_coordinator
COORD=$LAST_PID
trap - XFSZ
for s in site-a site-b; do fed_site "$s" --exit-after-eval; done
start_bg site-c "$FAULT_SITE" --config sites/site-c.yaml --fault hold-masked --hold "$TEST_TMP/go"
# two masked inputs on record, site-c's held
two() { [ "$(grep -c '"kind":"secagg_masked"' "$LOG" 2>/dev/null)" -eq 2 ]; }
wait_for 30 two || { cat coordinator.log; fail "site-a and site-b's masked inputs were not recorded"; }
grep -q 'holding the masked input' site-c.log || fail "site-c is not holding its masked input"
# No byte more for the coordinator's files, then let site-c send.
prlimit --pid "$COORD" --fsize="$(stat -c %s "$LOG")":unlimited || fail "prlimit failed" # soft only
touch "$TEST_TMP/go"
wait_for 20 grep -q 'REJECT_AUDIT_UNAVAILABLE' coordinator.log ||
  { cat coordinator.log; fail "site-c's masked input was not refused for the audit log"; }
grep -q 'REJECT_AUDIT_UNAVAILABLE' site-c.log || { cat site-c.log; fail "site-c was not told why"; }
sleep 2 # the outage lasts a few retries
kill -0 "$COORD" || fail "the coordinator exited while its log could not grow"
grep -q 'sum unmasked' coordinator.log && fail "a sum was unmasked while the log could not grow"
[ "$(fed_rounds_done "$RUN")" -eq 0 ] || fail "a round closed while the log could not grow"

prlimit --pid "$COORD" --fsize=unlimited:unlimited || fail "prlimit failed"
fed_coordinator_finishes "$COORD" 60 coordinator.log # the run finishes once space is freed
[ "$(fed_rounds_done "$RUN")" -eq 1 ] || fail "expected 1 round"
grep -q '"kind":"round_abandoned"' "$LOG" || fail "the first attempt was not abandoned"
grep -q '"reason":"writing again after' "$LOG" || fail "no record of the outage"
got=$(fed_final_hash "$RUN")
echo "daemons: $got (simulate: $want)"
[ -n "$want" ] && [ "$got" = "$want" ] || fail "θ differs from simulate after the retried round"
# Every masked input in a summed attempt is on record: the summed attempt's
# secagg_masked records are exactly its three sites, and the outage's
# refused input has none.
python3 - "$LOG" <<'PY' || fail "a masked input was summed without its record"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
sums = [r for r in recs if r["kind"] == "secure_sum"]
assert len(sums) == 1, len(sums)
nonce = sums[0]["nonce"]
masked = sorted(r["site"] for r in recs if r["kind"] == "secagg_masked" and r["nonce"] == nonce)
assert masked == ["site-a", "site-b", "site-c"], masked
first = [r for r in recs if r["kind"] == "secagg_masked" and r["nonce"] != nonce]
assert sorted(r["site"] for r in first) == ["site-a", "site-b"], first
PY
metafl audit verify "$LOG" --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "audit log does not verify"; }
echo "ok: a masked input whose record cannot be written is refused, not summed; writable again, the round was retried and ends with simulate's θ"
