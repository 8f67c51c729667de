#!/usr/bin/env bash
# Federated standardisation against hostile allow-listed sites over the real
# daemons (docs/DATA.md "Federated standardisation"): site-a and site-b are
# honest; site-c sends the moments of rows whose mean is 1e42 (a sample,
# n·Σx² ≥ (Σx)², but of no float data: pooled, the mean is no float and the
# run failed for everyone), site-d the moments of 100 times the rows it
# declared at Hello. The coordinator must leave both out of the pooling with
# a reason in its log, pool a and b alone (the same scaling, bit for bit, as
# `metafl simulate` over a and b), finish the run, and its audit log must
# verify. Both liars run the real site agent with a test fault
# (build/tests/site_fault_site).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${SITE_FAULT_SITE:-$ROOT/build/tests/site_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

FED_SITES=(site-a site-b site-c site-d)
fed_setup 1 "data.standardize=federated" "rounds.wait_for_sites=4" "rounds.deadline_s=6"
for s in "${FED_SITES[@]}"; do
  sed -i 's/^  standardize: site$/  standardize: federated/' "$TEST_TMP/sites/$s.yaml"
done
cd "$TEST_TMP"
# the reference: the pooling of the honest sites alone
sed -e '/^  - sites\/site-c.yaml$/d' -e 's/^  wait_for_sites: 4/  wait_for_sites: 2/' \
  coordinator.yaml >sim.yaml
metafl simulate --config sim.yaml --run-dir sim >simulate.out 2>simulate.log ||
  { cat simulate.log; fail "simulate failed"; }

fed_coordinator
COORD=$LAST_PID
for s in site-a site-b; do fed_site "$s" --exit-after-eval; done
start_bg site-c "$FAULT_SITE" --config sites/site-c.yaml --fault moments-beyond-floats --exit-after-eval
start_bg site-d "$FAULT_SITE" --config sites/site-d.yaml --fault moments-more-rows --exit-after-eval
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the coordinator did not finish"
wait "$COORD" || { rc=$?; tail -n 20 coordinator.log; fail "the coordinator exited with status $rc"; }
[ "$(fed_rounds_done run)" -eq 1 ] || fail "round 1 did not close"

grep -q "site site-c's moments of feature 0 are not a sample's" coordinator.log ||
  { grep scaling coordinator.log; fail "site-c's moments were not refused"; }
grep -q "site site-d sent the moments of [0-9]* rows but declared [0-9]* training rows" coordinator.log ||
  { grep scaling coordinator.log; fail "site-d's moments were not refused"; }
python3 - run/metrics.jsonl sim/metrics.jsonl <<'PY' || fail "the pooled scaling is not the honest sites' alone"
import json, sys
def ev(p, kind):
    return [e for e in map(json.loads, open(p)) if e.get("event") == kind]
got, want = ev(sys.argv[1], "scaling"), ev(sys.argv[2], "scaling")
pooled = sorted(e["site"] for e in ev(sys.argv[1], "scaling_moments"))
assert pooled == ["site-a", "site-b"], pooled
assert len(got) == 1 == len(want), (got, want)
assert got[0]["sites"] == 2 and got[0]["digest"] == want[0]["digest"], (got, want)
print("pooled", got[0]["rows"], "rows of a and b; digest", got[0]["digest"][:16])
PY
metafl audit verify run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "the audit log does not verify"; }
echo "ok: moments of no float data and of more rows than declared left out; a and b pooled as simulate; run finished"
