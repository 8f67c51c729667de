#!/usr/bin/env bash
# Federated model selection on the real daemons (coordinator + 3 site agents
# over CURVE), issue 16: three candidates, the FIRST one deliberately bad
# (inner and server rates of 1e-6: θ barely leaves θ₀), each trained two
# rounds and scored by the sites on validation rows held out of their
# training rows. The bad candidate must lose; the winner (by mean validation
# AUROC) is trained for the run's rounds and evaluated on the test rows.
# Checked: the metrics, the audit log (selection records that verify, the
# sites' update_sent records naming the validation split), status.json and
# the Prometheus file, `metafl report` naming the chosen setting, and
# `metafl simulate` of the same config ending with the same θ bit for bit,
# which also equals a run configured with the winner and no selection.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "output.prometheus_file=run/metafl.prom"
echo >>"$TEST_TMP/coordinator.yaml"  # the rewriter leaves no final newline
cat >>"$TEST_TMP/coordinator.yaml" <<'EOF'
selection:
  enabled: true
  rounds: 2
  validation_fraction: 0.25
  validation_seed: 9
  candidates:
    - {inner_lr: 0.000001, server_lr: 0.000001}
    - {}
    - {model: "linear:3-1", inner_steps: 3}
EOF
RUN=$TEST_TMP/run
fed_run_exit_after_eval 60
M=$RUN/metrics.jsonl

# Every candidate scored by all three sites on validation rows only.
[ "$(grep -c '"event":"selection_eval"' "$M")" -eq 9 ] || fail "expected 9 selection_eval lines"
[ "$(grep -c '"event":"selection_round"' "$M")" -eq 6 ] || fail "expected 6 selection rounds"
[ "$(grep -c '"event":"round"' "$M")" -eq 3 ] || fail "expected 3 rounds after selection"
[ "$(grep -c '"event":"eval"' "$M")" -eq 3 ] || fail "expected 3 final eval reports"
python3 - "$M" <<'PY' || fail "selection result wrong"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
cands = {e["candidate"]: e for e in lines if e["event"] == "selection_candidate"}
win = [e for e in lines if e["event"] == "selection"]
assert len(cands) == 3 and len(win) == 1, (cands, win)
w = win[0]
assert w["rule"] == "auroc", w
best = max(cands, key=lambda k: (cands[k]["score"], -cands[k]["loss"], -k))
assert w["winner"] == best != 1, (w, cands)          # the bad candidate lost
assert cands[1]["score"] < cands[w["winner"]]["score"] - 0.1, cands
# validation rows: 25% of each site's 180-181 training rows, never the 59-60 test rows
for e in lines:
    if e["event"] == "selection_eval":
        assert 44 <= e["n"] <= 46, e
    if e["event"] == "eval":
        assert 59 <= e["n"] <= 60, e
print("winner", w["winner"], w["setting"])
PY
grep -q 'model selection: winner: candidate' "$TEST_TMP/coordinator.log" || fail "no winner line"

# The audit logs: selection records on the coordinator's side, the split
# named in each site's update_sent records; everything verifies.
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null || fail "audit log does not verify"
grep -q '"kind":"selection".*winner: candidate' "$RUN/audit.log" || fail "no winner record"
[ "$(grep -c '"kind":"selection","round":[0-9]*,"site":"site-' "$RUN/audit.log")" -eq 9 ] ||
  fail "expected a selection record per site and candidate"
for s in "${FED_SITES[@]}"; do
  grep -q '"kind":"update_sent".*model selection candidate 2: trained without the validation rows (fraction 0.25, seed 9' \
    "$TEST_TMP/run-$s/audit.log" || fail "site $s: no selection note in its update_sent records"
  metafl audit verify "$TEST_TMP/run-$s/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
    fail "site $s: audit log does not verify"
done

winner=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "\"event\":\"selection\"," in l][0]["winner"])' "$M")
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["selection"]; assert s["winner"]==int(sys.argv[2]) and s["candidate"]==0 and s["candidates"]==3, s' \
  "$RUN/status.json" "$winner" || fail "status.json selection wrong"
grep -q "^metafl_selection_winner $winner\$" "$RUN/metafl.prom" || fail "no metafl_selection_winner in the Prometheus file"
grep -q '^metafl_selection_score{candidate="1"}' "$RUN/metafl.prom" || fail "no metafl_selection_score"

metafl report "$RUN" >"$TEST_TMP/report.txt" || fail "report failed"
grep -q "model selection by mean validation auroc .*3 candidates; chosen: candidate $winner, " "$TEST_TMP/report.txt" ||
  fail "report does not name the chosen setting: $(head -3 "$TEST_TMP/report.txt")"
grep -Eq "^  \* +$winner  auroc " "$TEST_TMP/report.txt" || fail "report does not mark the winner"

# Simulate = daemons, bit for bit; and the winner trained without selection
# is the same run.
daemon_hash=$(fed_final_hash "$RUN")
metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/sim" \
  >/dev/null 2>"$TEST_TMP/simulate.log" || fail "simulate failed"
sim_hash=$(fed_final_hash "$TEST_TMP/sim")
[ -n "$daemon_hash" ] && [ "$daemon_hash" = "$sim_hash" ] ||
  fail "final θ differs: daemons $daemon_hash, simulate $sim_hash"
[ "$winner" = 2 ] || fail "expected candidate 2 (the configured setting) to win on this data"
sed -i '/^selection:/,$d' "$TEST_TMP/coordinator.yaml"
metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/plain" \
  >/dev/null 2>"$TEST_TMP/plain.log" || fail "simulate without selection failed"
[ "$(fed_final_hash "$TEST_TMP/plain")" = "$daemon_hash" ] ||
  fail "the winner trained after selection differs from the same setting trained alone"
echo "ok: candidate $winner chosen; daemons = simulate = plain run ($daemon_hash)"
