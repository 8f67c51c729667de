#!/usr/bin/env bash
# A hospital's privacy budget survives restarts and deleted files, with the
# real daemons: site-a's policy (site-level DP, σ 2, budget ε 3.5 at δ 1e-5)
# fits two rounds (ε 2.17, 3.19); a third would reach 4.01. Run 1: two
# rounds, both accounted in site-a's signed audit log; `metafl audit
# privacy` agrees on both logs. Run 2: a new coordinator run, site-a
# restarted after every file but its audit log was deleted: it declines
# the round naming privacy.epsilon_budget, logs the refusal and tells the
# coordinator (a SiteFailure naming the rule), which goes on without it
# ("failed":1, and `metafl status` shows the site's last failure). Run 3: site-a's audit log
# deleted too: it declines DP rounds (privacy.ledger) and says how to
# recover, instead of counting from zero.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "eval.deadline_s=3"
cat >>"$TEST_TMP/sites/site-a.yaml" <<EOF
privacy:
  mode: site
  epsilon_budget: 3.5
  delta: 1.0e-5
  noise_multiplier: 2
  clip_max: 1.0
  min_records: 20
  allow_unnoised_stats: true
EOF
cd "$TEST_TMP"

coord_done() { ! kill -0 "$COORD" 2>/dev/null; }
run_coordinator() { # RUN_DIR ROUNDS
  sed -i "s|^  run_dir: .*|  run_dir: $1|; s|^  count: .*|  count: $2|" coordinator.yaml
  fed_coordinator
  COORD=$LAST_PID
  wait_for 90 coord_done || fail "the coordinator ($1) did not finish"
}
stop_sites() {
  local p
  for p in "${SITE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SITE_PIDS[@]}"; do
    _gone() { ! kill -0 "$p" 2>/dev/null; }
    wait_for 20 _gone || fail "site agent $p did not stop"
  done
}
start_sites() { # extra args for site-a
  SITE_PIDS=()
  fed_site site-a "$@"; SITE_PIDS+=("$LAST_PID")
  fed_site site-b; SITE_PIDS+=("$LAST_PID")
  fed_site site-c; SITE_PIDS+=("$LAST_PID")
}

# ---- run 1: a new ledger, two DP rounds -----------------------------------
start_sites --new-privacy-ledger
run_coordinator run1 2
stop_sites
[ "$(fed_rounds_done run1)" -eq 2 ] || fail "run 1: $(fed_rounds_done run1) rounds, want 2"
grep -q '"kind":"ledger_started"' run-site-a/audit.log || fail "no ledger_started record"
n=$(grep -c '"kind":"update_sent".*"privacy":{"clip":1,"sigma":2,"q":1,"steps":1' run-site-a/audit.log || true)
[ "$n" -eq 2 ] || fail "site-a's log has $n DP update records, want 2: $(cat run-site-a/audit.log)"
grep -q '"epsilon":3.18899156' run-site-a/audit.log || fail "round 2's ε is not 3.18899156..."
metafl audit privacy run-site-a/audit.log --keys keys >audit-site.txt \
  || fail "audit privacy (site log): $(cat audit-site.txt)"
grep -Eq '^site-a +2 ' audit-site.txt || fail "audit privacy: site-a not 2 releases: $(cat audit-site.txt)"
metafl audit privacy run1/audit.log --keys keys >audit-coord.txt \
  || fail "audit privacy (coordinator log): $(cat audit-coord.txt)"
grep -Eq '^site-a +2 ' audit-coord.txt || fail "coordinator log: not 2 site-a releases: $(cat audit-coord.txt)"

# ---- run 2: restart, state files gone, the budget still binds -------------
find run-site-a -type f ! -name audit.log -delete
start_sites --new-privacy-ledger      # asking again must not reset an existing ledger
run_coordinator run2 1
stop_sites
grep -q 'new-privacy-ledger ignored' site-a.log || fail "the second --new-privacy-ledger was not refused"
grep -q 'privacy.epsilon_budget' site-a.log || fail "site-a did not decline on its budget: $(tail -n 5 site-a.log)"
grep -q '"kind":"task_declined".*privacy.epsilon_budget' run-site-a/audit.log || fail "no task_declined record at site-a"
grep -q 'site site-a could not do its task: privacy.epsilon_budget' coordinator.log \
  || fail "the coordinator did not log the refusal"
grep -q '"failed":1' run2/metrics.jsonl || fail "metrics do not count the refusal: $(cat run2/metrics.jsonl)"
grep -q '"accepted":2' run2/metrics.jsonl || fail "the round did not go on with the other two sites"
metafl status --config coordinator.yaml >status.txt 2>&1 || true
grep -q 'last failure: privacy.epsilon_budget' status.txt \
  || fail "metafl status does not show the refusal: $(cat status.txt)"
n=$(grep -c '"kind":"update_sent"' run-site-a/audit.log || true)
[ "$n" -eq 2 ] || fail "site-a sent an update past its budget"
metafl audit verify run-site-a/audit.log --keys keys >/dev/null || fail "site-a's log no longer verifies"

# ---- run 3: the audit log itself deleted: no DP task, and how to recover ----
rm -f run-site-a/audit.log
start_sites
run_coordinator run3 1
stop_sites
grep -q 'privacy.ledger' site-a.log || fail "site-a did not decline without its ledger"
grep -q 'restore the site.s audit log from a backup' site-a.log || fail "no recovery advice: $(tail -n 3 site-a.log)"
grep -q '"failed":1' run3/metrics.jsonl || fail "run 3: refusal not counted"
if grep -q '"kind":"update_sent"' run-site-a/audit.log; then
  fail "site-a sent a DP update without a ledger"
fi
echo "ok"
