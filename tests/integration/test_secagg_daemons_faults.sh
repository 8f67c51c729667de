#!/usr/bin/env bash
# Secure aggregation over the real daemons when sites fail (docs/SECAGG.md):
# four sites over CurveZMQ, threshold 3.
#  1. site-d shares its keys, then exits (a dropout after share-keys): the
#     round is recovered from the other sites' shares at the masked phase's
#     deadline and the run ends with the θ `metafl simulate` gets from
#     site-a, site-b and site-c alone, bit for bit.
#  2. site-d sends a masked vector one word short and site-c sends its
#     masked vector twice: the coordinator rejects both with their reasons,
#     keeps site-c's first, and the round ends with the same θ as 1.
# Sites d run the real site agent with a test fault switched on
# (build/tests/secagg_fault_site).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${SECAGG_FAULT_SITE:-$ROOT/build/tests/secagg_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

FED_SITES=(site-a site-b site-c site-d)
fed_secagg_setup 1 rounds.min_sites=3 rounds.wait_for_sites=4 rounds.deadline_s=3
cd "$TEST_TMP"
# the reference: the three honest sites (coordinator.yaml lists a, b, c)
sed 's/^  wait_for_sites: 4/  wait_for_sites: 3/' coordinator.yaml >sim.yaml
fed_simulate sim.yaml
want=$sim_hash
[ -n "$want" ] || fail "simulate left no θ hash"

# run_case NAME FAULT_D [FAULT_C]: one run; site-d (and site-c) faulty.
run_case() {
  local name=$1 fault_d=$2 fault_c=${3:-}
  sed "s|^  run_dir: run|  run_dir: run-$name|" coordinator.yaml >"coord-$name.yaml"
  start_bg "coord-$name" metafl-coordinator --config "coord-$name.yaml"
  COORD=$LAST_PID
  for s in site-a site-b; do start_bg "$name-$s" metafl-site-agent --config "sites/$s.yaml" --exit-after-eval; done
  if [ -n "$fault_c" ]; then
    start_bg "$name-site-c" "$FAULT_SITE" --config sites/site-c.yaml --fault "$fault_c"
  else
    start_bg "$name-site-c" metafl-site-agent --config sites/site-c.yaml --exit-after-eval
  fi
  start_bg "$name-site-d" "$FAULT_SITE" --config sites/site-d.yaml --fault "$fault_d"
  wait_for 40 bash -c "! kill -0 $COORD 2>/dev/null" ||
    { tail -n 30 "coord-$name.log"; fail "$name: coordinator did not finish"; }
  wait "$COORD" || { tail -n 30 "coord-$name.log"; fail "$name: coordinator exited with $?"; }
  [ "$(fed_rounds_done "run-$name")" -eq 1 ] || { cat "coord-$name.log"; fail "$name: no round closed"; }
  grep -q 'secure aggregation of 3 sites (threshold 3, every pair), sum unmasked' "coord-$name.log" ||
    { cat "coord-$name.log"; fail "$name: the round was not summed over 3 sites"; }
  grep -q '"event":"round","round":1,.*"accepted":3' "run-$name/metrics.jsonl" ||
    fail "$name: round 1 did not fold 3 sites"
  local got
  got=$(fed_final_hash "run-$name")
  echo "$name: $got (simulate over a, b, c: $want)"
  [ "$got" = "$want" ] || fail "$name: θ differs from simulate over the honest sites"
  metafl audit verify "run-$name/audit.log" --keys keys >"verify-$name.out" 2>&1 ||
    { cat "verify-$name.out"; fail "$name: audit log does not verify"; }
}

run_case dropout exit-after-share
grep -q 'site-d: round 1: leaving after sharing keys' dropout-site-d.log ||
  { cat dropout-site-d.log; fail "site-d did not leave after sharing"; }
grep -q '"kind":"secagg_phase".*"n":4,.*"reason":"share 1:site-a 2:site-b 3:site-c 4:site-d"' run-dropout/audit.log ||
  fail "dropout: site-d's shares were not taken"
grep -q '"kind":"secagg_phase".*"reason":"masked 1:site-a 2:site-b 3:site-c"' run-dropout/audit.log ||
  fail "dropout: the survivors are not a, b, c"

run_case hostile short-masked twice-masked
grep -q 'rejected message from site site-d: REJECT_SECAGG_LENGTH' coord-hostile.log ||
  { cat coord-hostile.log; fail "the short masked vector was not rejected for its length"; }
grep -q 'rejected message from site site-c: REJECT_DUPLICATE' coord-hostile.log ||
  { cat coord-hostile.log; fail "the second masked vector was not rejected as a duplicate"; }
grep -q 'REJECT_SECAGG_LENGTH' hostile-site-d.log || fail "site-d was not told why"
echo "ok: a dropout after sharing and hostile masked inputs leave θ = simulate over the honest sites"
