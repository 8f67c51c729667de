#!/usr/bin/env bash
# With DP on, nothing unnoised leaves, and "not sent" is explicit (issue 11,
# item 6), over the real daemons: every site runs record-level DP-SGD
# (Reptile, q 0.2, σ 1.1) with the default allow_unnoised_stats (false for
# DP). Each signed update header lists n_samples, both losses, n_tasks and
# the pre-clip norm as not sent and carries none of them (audit verify
# decodes every header and refuses one that both lists and sends a field);
# the coordinator's metrics lines say null, not 0 or -1; `metafl status` and
# `metafl report` say the losses were not sent; `metafl audit show` shows
# the count as "not sent".
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "eval.deadline_s=3"
for s in "${FED_SITES[@]}"; do
  cat >>"$TEST_TMP/sites/$s.yaml" <<EOF
privacy:
  mode: record
  epsilon_budget: 50
  delta: 1.0e-5
  noise_multiplier: 1.1
  sample_rate: 0.2
  clip_max: 1.0
  min_records: 20
  min_batch: 16
EOF
done
cd "$TEST_TMP"
SITE_PIDS=()
for s in "${FED_SITES[@]}"; do fed_site "$s" --new-privacy-ledger; SITE_PIDS+=("$LAST_PID"); done
fed_coordinator
COORD=$LAST_PID
coord_done() { ! kill -0 "$COORD" 2>/dev/null; }
wait_for 120 coord_done || fail "the coordinator did not finish"
for p in "${SITE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
[ "$(fed_rounds_done run)" -eq 2 ] || fail "$(fed_rounds_done run) rounds, want 2: $(tail -n 5 coordinator.log)"

# every site's update was DP-SGD and accounted
n=$(grep -c '"kind":"update_accepted".*"privacy":{"clip":1,"sigma":1.1,"q":0.2' run/audit.log || true)
[ "$n" -eq 6 ] || fail "$n DP-SGD updates accepted, want 6: $(grep update_accepted run/audit.log | head -n 2)"
metafl audit verify run/audit.log --keys keys >verify.txt || fail "audit verify: $(cat verify.txt)"
for s in "${FED_SITES[@]}"; do
  metafl audit verify "run-$s/audit.log" --keys keys >/dev/null || fail "$s's log does not verify"
done

# the signed headers: everything unnoised listed as not sent
metafl audit show run/audit.log >show.txt || fail "audit show: $(cat show.txt)"
n=$(grep -c 'update_accepted *not sent .*not sent: n_samples loss_before loss_after n_tasks pre_clip_norm' show.txt || true)
[ "$n" -eq 6 ] || fail "audit show: $n updates with every statistic not sent, want 6: $(cat show.txt)"

# the coordinator: no fake 0 (or -1) loss in metrics, status or report
n=$(grep -c '"event":"round".*"loss_before":null,"loss_after":null' run/metrics.jsonl || true)
[ "$n" -eq 2 ] || fail "metrics lines do not say null for the losses: $(cat run/metrics.jsonl)"
metafl status --config coordinator.yaml >status.txt 2>&1 || true
grep -q 'training losses not sent (DP or SecAgg)' status.txt || fail "metafl status: $(cat status.txt)"
metafl report run >report.txt 2>&1 || true
grep -q 'training losses not sent (DP or SecAgg)' report.txt || fail "metafl report: $(cat report.txt)"
echo "ok"
