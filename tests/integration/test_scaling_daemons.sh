#!/usr/bin/env bash
# Federated standardisation on the real daemons (coordinator + 3 site agents
# over CURVE), issue 16: data.standardize: federated at the coordinator and
# at every site. Before anything else each site sends the count, per-feature
# sums and sums of squares of its FIT rows (its training rows minus
# selection's validation part), the coordinator pools them into one scaling
# that every later task carries, and selection then chooses between that
# scaling and each site's own on validation rows. Checked: what each site
# sent (metrics, audit records that verify, the sites' own log lines), the
# record a restart reads (scaling.state), `metafl report` naming the chosen
# scaling, and `metafl simulate` of the same config ending with the same θ
# bit for bit.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "data.standardize=federated"
for s in "${FED_SITES[@]}"; do
  sed -i 's/^  standardize: site$/  standardize: federated/' "$TEST_TMP/sites/$s.yaml"
  grep -q 'standardize: federated' "$TEST_TMP/sites/$s.yaml" || fail "site config not rewritten"
done
echo >>"$TEST_TMP/coordinator.yaml"
cat >>"$TEST_TMP/coordinator.yaml" <<'EOF'
selection:
  enabled: true
  rounds: 1
  validation_fraction: 0.2
  validation_seed: 9
  candidates:
    - {}
    - {standardize: site}
EOF
RUN=$TEST_TMP/run
fed_run_exit_after_eval 60
M=$RUN/metrics.jsonl

# One contribution per site: 180-181 training rows minus a fifth of each
# class for validation;
# the pooled scaling is their pooled mean and sample deviation.
python3 - "$M" <<'PY' || fail "moments or pooled scaling wrong"
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
mom = [e for e in lines if e["event"] == "scaling_moments"]
pool = [e for e in lines if e["event"] == "scaling"]
assert sorted(e["site"] for e in mom) == ["site-a", "site-b", "site-c"], mom
assert all(143 <= e["n"] <= 146 and len(e["sum"]) == 3 == len(e["sum_sq"]) for e in mom), mom
assert len(pool) == 1, pool
n = sum(e["n"] for e in mom)
for j in range(3):
    s = sum(e["sum"][j] for e in mom); ss = sum(e["sum_sq"][j] for e in mom)
    m = s / n; sd = math.sqrt((ss - s * m) / (n - 1))
    assert abs(pool[0]["mean"][j] - m) < 1e-5 * (1 + abs(m)), (j, pool, m)
    assert abs(pool[0]["scale"][j] - sd) < 1e-5 * sd, (j, pool, sd)
# the moments came before any round
first_round = min(i for i, e in enumerate(lines) if e["event"] in ("selection_round", "round"))
assert max(i for i, e in enumerate(lines) if e["event"] == "scaling") < first_round
print("pooled over", n, "fit rows")
PY
[ -s "$RUN/checkpoints/scaling.state" ] || fail "no scaling.state"
metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >/dev/null || fail "audit log does not verify"
[ "$(grep -c '"kind":"scaling","round":0,"site":"site-' "$RUN/audit.log")" -eq 3 ] ||
  fail "expected a scaling record per site"
grep -Eq '"kind":"scaling".*pooled scaling of 3 features from 3 sites, 43[0-9] fit rows' "$RUN/audit.log" ||
  fail "no pooled scaling record"
# Each site recorded what it sent before it left, with the digest the
# coordinator recorded on receipt; its log verifies.
python3 - "$RUN/audit.log" "$TEST_TMP" "${FED_SITES[@]}" <<'PY' || fail "site and coordinator scaling records differ"
import json, sys
coord = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "scaling" and r.get("site"):
        coord[r["site"]] = (r["n"], r["delta_hash"])
for s in sys.argv[3:]:
    mine = [json.loads(l) for l in open(f"{sys.argv[2]}/run-{s}/audit.log")]
    mine = [(r["n"], r["delta_hash"]) for r in mine if r.get("kind") == "scaling"]
    assert mine == [coord[s]], (s, mine, coord.get(s))
print("sites' scaling records match the coordinator's")
PY
for s in "${FED_SITES[@]}"; do
  metafl audit verify "$TEST_TMP/run-$s/audit.log" --keys "$TEST_TMP/keys" >/dev/null ||
    fail "site $s: audit log does not verify"
  grep -Eq "sends the count \(14[3-6]\) and per-feature sums and sums of squares of its fit rows" \
    "$TEST_TMP/$s.log" || fail "site $s did not log what it sent"
done
metafl report "$RUN" >"$TEST_TMP/report.txt" || fail "report failed"
grep -Eq "^  \* +[12]  auroc .*" "$TEST_TMP/report.txt" || fail "report does not mark the winner"
grep -q "scaling federated" "$TEST_TMP/report.txt" || fail "report does not name the federated candidate"
grep -Eq "^feature scaling: the consortium's pooled mean and scale .* from 3 sites, 43[0-9] fit rows" \
  "$TEST_TMP/report.txt" || fail "report does not say the scaling was pooled"
metafl report "$RUN" --json "$TEST_TMP/report.json" >/dev/null || fail "report --json failed"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["scaling"]; assert s["kind"]=="federated" and s["sites"]==3, s' \
  "$TEST_TMP/report.json" || fail "report --json has no scaling"

# Simulate = daemons, bit for bit (the same moments, pool and scaling).
cd "$TEST_TMP"
fed_expect_simulate_match "$RUN"
[ "$(grep -c '"event":"scaling_moments"' sim/metrics.jsonl)" -eq 3 ] || fail "simulate did not pool"
echo "ok: pooled scaling sent with every task; daemons = simulate ($sim_hash)"
