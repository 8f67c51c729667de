#!/usr/bin/env bash
# Secure aggregation with 32-bit masked words over the real daemons
# (docs/SECAGG.md "Word width"): the coordinator asks for word_bits 32 with
# an update bound; three site agents mask and send uint32 words (half the
# bytes of the default 64-bit words) and the run ends with the same θ, bit
# for bit, as `metafl simulate` with the same config, whose sum the
# protocol also computes mod 2^32. The masked hashes match on both sides.
# With a bound the sites' updates exceed, each site refuses to encode its
# update and says which setting (no wrapped sum is ever folded).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 rounds.min_sites=3 rounds.deadline_s=5
cd "$TEST_TMP"
# 180 training rows a site, |Δⱼ| well below 0.3 here: |w·Δⱼ| ≤ 64 holds
fed_secagg_section coordinator.yaml 'word_bits: 32' 'update_bound: 64'
fed_secagg_rosters
RUN=$TEST_TMP/run

fed_run_exit_after_eval 60
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds in $RUN/metrics.jsonl"
fed_expect_secagg_rounds 2
for s in "${FED_SITES[@]}"; do
  [ "$(grep -c 'masked update sent ([0-9]* words of 32 bits)' "$s.log")" -eq 2 ] ||
    { cat "$s.log"; fail "$s: did not send 32-bit masked words"; }
done

fed_expect_simulate_match "$RUN"
for s in "${FED_SITES[@]}"; do
  metafl audit verify "$RUN/audit.log" "run-$s/audit.log" --keys keys --cross >"cross-$s.out" 2>&1 ||
    { cat "cross-$s.out"; fail "$s: cross-check failed"; }
  grep -q '2 masked input(s) recorded by both with the same hash' "cross-$s.out" ||
    { cat "cross-$s.out"; fail "$s: the cross-check did not match 2 masked inputs"; }
done

# A bound the updates exceed: each site refuses its own update, naming the
# coordinator's setting; the attempt is abandoned, θ stays θ₀.
sed -e "s|^  run_dir: run|  run_dir: run-tight|" -e 's|^  update_bound: 64|  update_bound: 0.000001|' \
  -e 's|^  deadline_s: 5|  deadline_s: 3\n  max_attempts: 1|' coordinator.yaml >tight.yaml
grep -q 'max_attempts: 1' tight.yaml || fail "tight.yaml: no max_attempts"
start_bg coord-tight metafl-coordinator --config tight.yaml
TCOORD=$LAST_PID
for s in "${FED_SITES[@]}"; do start_bg "tight-$s" metafl-site-agent --config "sites/$s.yaml"; done
wait_for 40 grep -q 'exceeds the aggregation bound .*secure_aggregation.update_bound' tight-site-a.log ||
  { cat tight-site-a.log; fail "site-a did not refuse an update beyond the bound"; }
wait_for 40 bash -c "! kill -0 $TCOORD 2>/dev/null" ||
  { tail -n 30 coord-tight.log; fail "the tight coordinator did not give up"; }
[ "$(fed_rounds_done run-tight)" -eq 0 ] || fail "a round closed with updates beyond the bound"
grep -q 'secure aggregation of .* sum unmasked' coord-tight.log && fail "a sum was unmasked"
echo "ok: 32-bit secure aggregation over the daemons ends with simulate's θ ($sim_hash)"
