#!/usr/bin/env bash
# Upload flow control against an allow-listed site that asks to upload and
# never sends (docs/WIRE.md "Upload flow control"), over the real daemons:
# one upload slot, Δ of 80 kB (over the 64 KiB that need no grant); site-d
# (build/tests/site_fault_site --fault hog-grant) answers each task at once
# with UploadReady and then stays connected and silent on the update, so it
# holds the slot before the honest sites have trained (200 local steps of a
# 16k-parameter model each: far longer than the hog's answer, even under
# load). The coordinator must
# take the slot back after limits.site_timeout_s (3 s) while others wait and
# hand it on: round 1 closes at its deadline with the three honest updates
# (before, the slot was held to the deadline, every attempt was abandoned
# with none, and the run failed), and θ equals `metafl simulate` over the
# honest sites bit for bit.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${SITE_FAULT_SITE:-$ROOT/build/tests/site_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

FED_SITES=(site-a site-b site-c site-d)
fed_setup 1 "rounds.max_concurrent_uploads=1" "model.spec=mlp:3-4096-1" \
  "algorithm.outer_steps=20" "algorithm.inner_steps=10" "rounds.wait_for_sites=4" "rounds.deadline_s=8" \
  "limits.site_timeout_s=3"
cd "$TEST_TMP"
sed 's/^  wait_for_sites: 4/  wait_for_sites: 3/' coordinator.yaml >sim.yaml
metafl simulate --config sim.yaml --run-dir sim >simulate.out 2>simulate.log ||
  { cat simulate.log; fail "simulate failed"; }
want=$(fed_final_hash sim)

fed_coordinator
COORD=$LAST_PID
start_bg site-d "$FAULT_SITE" --config sites/site-d.yaml --fault hog-grant
for s in site-a site-b site-c; do fed_site "$s" --exit-after-eval; done
wait_for 40 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the coordinator did not finish"
wait "$COORD" || { rc=$?; tail -n 20 coordinator.log; fail "the coordinator exited with status $rc"; }
grep -q 'TEST FAULT: asking to upload round 1, never sending' site-d.log ||
  fail "site-d's fault did not fire"
grep -q 'round 1: site site-d held an upload slot for [0-9.]* s without sending its update; the slot goes to the next site' coordinator.log ||
  { grep -i 'slot\|round 1' coordinator.log | tail -n 10; fail "site-d's slot was not taken back"; }
grep -q '"event":"round","round":1,.*"accepted":3,.*"at_deadline":true' run/metrics.jsonl ||
  { cat run/metrics.jsonl; fail "round 1 did not close at its deadline with the 3 honest updates"; }
got=$(fed_final_hash run)
echo "daemons $got, simulate over a, b, c $want"
[ -n "$got" ] && [ "$got" = "$want" ] || fail "θ differs from simulate over the honest sites"
echo "ok: a site that asks and never sends holds the only slot 3 s, not the round; honest updates taken"
