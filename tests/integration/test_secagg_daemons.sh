#!/usr/bin/env bash
# Secure aggregation over the real daemons (docs/SECAGG.md): the
# coordinator and three site agents over CurveZMQ run every round through
# the protocol's five phases and end with the same θ, bit for bit, as
# `metafl simulate` with secure aggregation; the coordinator never records
# an update in clear (each site records its release, update_sent, for its
# privacy ledger); both audit logs hold the masked inputs' hashes, the
# same on both sides, and verify (`metafl audit verify --cross` checks them).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

# Each hospital is provisioned with the consortium's keys (its roster),
# never taken from the coordinator.
fed_secagg_setup 3 rounds.min_sites=3 rounds.deadline_s=5
cd "$TEST_TMP"
RUN=$TEST_TMP/run

fed_run_exit_after_eval 60
[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "expected 3 rounds in $RUN/metrics.jsonl"
fed_expect_secagg_rounds 3
# The coordinator learns no site's losses under SecAgg: "not sent", never a
# made-up 0 (metrics null), over the daemons as in simulate.
[ "$(grep '"event":"round"' "$RUN/metrics.jsonl" | grep -c '"loss_before":null,"loss_after":null')" -eq 3 ] ||
  { cat "$RUN/metrics.jsonl"; fail "round losses under SecAgg are not 'not sent' (null)"; }

fed_expect_simulate_match "$RUN"
[ "$(grep '"event":"round"' sim/metrics.jsonl | grep -c '"loss_before":null,"loss_after":null')" -eq 3 ] ||
  { cat sim/metrics.jsonl; fail "simulate shows SecAgg round losses the coordinator cannot know"; }

# Audit: no Δ in clear, every phase's transcript, every masked input's hash.
metafl audit verify "$RUN/audit.log" --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "coordinator audit log does not verify"; }
grep -q '"kind":"update_accepted"' "$RUN/audit.log" && fail "an update was recorded in clear"
[ "$(grep -c '"kind":"secagg_phase"' "$RUN/audit.log")" -eq 15 ] ||
  fail "expected 5 secagg_phase records per round"
[ "$(grep -c '"kind":"secagg_masked"' "$RUN/audit.log")" -eq 9 ] ||
  fail "expected 9 secagg_masked records"
[ "$(grep -c '"kind":"secure_sum"' "$RUN/audit.log")" -eq 3 ] || fail "expected 3 secure_sum records"
for s in "${FED_SITES[@]}"; do
  log=run-$s/audit.log
  metafl audit verify "$log" --keys keys >"verify-$s.out" 2>&1 ||
    { cat "verify-$s.out"; fail "$s: audit log does not verify"; }
  # its own record of each release (the privacy ledger counts these) ...
  [ "$(grep -c '"kind":"update_sent"' "$log")" -eq 3 ] || fail "$s: expected 3 update_sent records"
  [ "$(grep -c '"kind":"secagg_masked"' "$log")" -eq 3 ] || fail "$s: expected 3 secagg_masked records"
  # the hash the site recorded for each masked input is the one the coordinator recorded
  for h in $(grep '"kind":"secagg_masked"' "$log" | sed 's/.*"delta_hash":"\([0-9a-f]*\)".*/\1/'); do
    grep '"kind":"secagg_masked"' "$RUN/audit.log" | grep "\"site\":\"$s\"" | grep "$h" >/dev/null ||
      fail "$s: masked input $h not in the coordinator's log"
  done
done
# ... and `metafl audit verify --cross` matches them pairwise.
for s in "${FED_SITES[@]}"; do
  metafl audit verify "$RUN/audit.log" "run-$s/audit.log" --keys keys --cross >"cross-$s.out" 2>&1 ||
    { cat "cross-$s.out"; fail "$s: cross-check failed"; }
  grep -q '3 masked input(s) recorded by both with the same hash' "cross-$s.out" ||
    { cat "cross-$s.out"; fail "$s: the cross-check did not match 3 masked inputs"; }
done
# A site that cannot take part (no roster: it does not offer "secagg") is
# refused at Hello, before any round could make it send Δ in clear.
sed -i '/^secure_aggregation:/,$d' sites/site-c.yaml
sed "s|^  run_dir: run|  run_dir: run-noroster|" coordinator.yaml >noroster.yaml
start_bg coord-noroster metafl-coordinator --config noroster.yaml
start_bg noroster-site-c metafl-site-agent --config sites/site-c.yaml
wait_for 20 grep -q 'refused Hello from site site-c: this run uses secure aggregation' coord-noroster.log ||
  { cat coord-noroster.log; fail "a site without secure aggregation was not refused"; }
wait_for 20 grep -q 'REJECT_VERSION' noroster-site-c.log || { cat noroster-site-c.log; fail "site-c was not told"; }
echo "ok: secure aggregation over the daemons ends with simulate's θ ($sim_hash)"
