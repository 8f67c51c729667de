#!/usr/bin/env bash
# Secure aggregation in `metafl simulate` (docs/SECAGG.md): one config run
# with and without `secure_aggregation` ends with the same θ, bit for bit
# (the protocol's unmasked sum is exactly the plain fixed-point sum), every
# round went through the protocol, the config checks that belong to it
# hold. (The daemons run it too: test_secagg_daemons.sh.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 rounds.min_sites=3
cd "$TEST_TMP"
cp coordinator.yaml plain.yaml
cp coordinator.yaml secagg.yaml
fed_secagg_section secagg.yaml

metafl simulate --config plain.yaml --run-dir plain-run >plain.out 2>plain.log ||
  { cat plain.log; fail "simulate without secure aggregation failed"; }
metafl simulate --config secagg.yaml --run-dir secagg-run >secagg.out 2>secagg.log ||
  { cat secagg.log; fail "simulate with secure aggregation failed"; }
plain=$(fed_final_hash plain-run)
secure=$(fed_final_hash secagg-run)
echo "plain:  $plain"
echo "secagg: $secure"
[ "$(fed_rounds_done secagg-run)" -eq 3 ] || fail "expected 3 rounds with secure aggregation"
[ -n "$plain" ] && [ "$plain" = "$secure" ] ||
  fail "final θ differs: plain $plain, secure aggregation $secure"
[ "$(grep -c 'secure aggregation of 3 sites (threshold 3, every pair), sum unmasked' secagg.log)" -eq 3 ] ||
  { cat secagg.log; fail "not every round was summed by secure aggregation"; }
grep -q 'secure aggregation' plain.log && fail "the plain run used secure aggregation"

# The coordinator's audit log holds one signed secure_sum record per round
# (the transcript's digest, the sites) and verifies.
metafl audit verify secagg-run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "audit log does not verify"; }
[ "$(grep -c '"kind":"secure_sum".*"n":3,.*"reason":"sites site-a site-b site-c"' secagg-run/audit.log)" -eq 3 ] ||
  { cat secagg-run/audit.log; fail "expected 3 secure_sum records"; }
grep -q '"kind":"update_accepted"' secagg-run/audit.log && fail "an update was recorded in clear"

# Config checks: a norm bound the coordinator could not apply, too few sites.
cp secagg.yaml bad.yaml
sed -i 's/^  min_sites: 3/  min_sites: 3\n  norm_bound: 5/' bad.yaml
metafl simulate --config bad.yaml --run-dir bad-run >/dev/null 2>bad.log &&
  fail "a norm bound with secure aggregation was accepted"
grep -q "rounds.norm_bound.*must be 0 with secure aggregation" bad.log || { cat bad.log; fail "no norm_bound error"; }
cp secagg.yaml few.yaml
sed -i 's/^  min_sites: 3/  min_sites: 2/' few.yaml
metafl simulate --config few.yaml --run-dir few-run >/dev/null 2>few.log &&
  fail "min_sites below the threshold was accepted"
grep -q "rounds.min_sites.*below secure_aggregation.threshold" few.log || { cat few.log; fail "no min_sites error"; }

cp secagg.yaml robust.yaml
sed -i 's/^  optimizer: sgd/  optimizer: sgd\n  aggregator: median/' robust.yaml
metafl simulate --config robust.yaml --run-dir robust-run >/dev/null 2>robust.log &&
  fail "a robust aggregator with secure aggregation was accepted"
grep -q "server.aggregator.*must be mean with secure aggregation" robust.log || { cat robust.log; fail "no aggregator error"; }

echo "ok: simulate with secure aggregation ends with the same θ ($secure)"
