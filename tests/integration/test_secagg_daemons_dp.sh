#!/usr/bin/env bash
# Site-level DP under secure aggregation over the real daemons (issue 12
# item 3): three sites in privacy mode site with privacy.distributed_noise
# opt in, the coordinator sums their masked inputs (threshold 3). Each
# round must be summed (a DP site withholds its sample count, and its input
# must weigh 1: it weighed 0 before, which the quantiser refused, so every
# attempt failed); each site adds a 1/t share of its noise (σ/√3, so |Δ|
# about 2/√3·√42 ≈ 7.5 with 42 parameters, against ≈ 13 for the full σ = 2)
# and its audit log and ledger account the round at the sum's σ = 2.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_secagg_setup 3 rounds.min_sites=3 rounds.deadline_s=5
cd "$TEST_TMP"
for s in "${FED_SITES[@]}"; do
  cat >>"sites/$s.yaml" <<EOT
privacy:
  mode: site
  epsilon_budget: 50
  noise_multiplier: 2
  clip_max: 1.0
  min_records: 20
  distributed_noise: true
EOT
done
fed_run_exit_after_eval 90 --new-privacy-ledger
[ "$(fed_rounds_done "$TEST_TMP/run")" = 3 ] || fail "not 3 rounds closed"
[ "$(grep -c 'sum unmasked' coordinator.log)" = 3 ] || fail "not 3 securely summed rounds"

norms=()
for s in "${FED_SITES[@]}"; do
  log=run-$s/audit.log
  [ "$(grep -c '"kind":"update_sent"' "$log")" = 3 ] || fail "$s: not 3 updates on its audit log"
  grep '"kind":"update_sent"' "$log" | grep '"sigma":2,' >/dev/null || fail "$s: update_sent not accounted at sigma 2"
  grep '"kind":"update_sent"' "$log" | grep -v '"sigma":2,' >/dev/null && fail "$s: an update accounted at another sigma"
  while read -r n; do norms+=("$n"); done < <(grep '"kind":"update_sent"' "$log" | sed -n 's/.*"norm":\([0-9.e+-]*\),.*/\1/p')
  metafl audit privacy "$log" --keys keys >"audit-$s.txt" || fail "audit privacy ($s): $(cat "audit-$s.txt")"
  grep -Eq "^$s +3 " "audit-$s.txt" || fail "audit privacy: $s not 3 releases: $(cat "audit-$s.txt")"
done
[ "${#norms[@]}" = 9 ] || fail "expected 9 update norms, got ${#norms[@]}"
# The mean of nine norms: ≈ 7.5 with the share (std of the mean ≈ 0.3), ≈ 13
# with the full noise; 10.2 lies about nine standard deviations from either.
mean=$(printf '%s\n' "${norms[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }')
awk -v m="$mean" 'BEGIN { exit !(m > 5 && m < 10.2) }' ||
  fail "mean |Δ| $mean is not the noise share's (≈ 7.5; the full σ gives ≈ 13)"
echo "ok: 3 securely summed rounds with distributed noise, mean |Δ| $mean, accounted at sigma 2"
