#!/usr/bin/env bash
# A CSV source with a continuous label (rule: regression) federated over
# the real daemons: three hospitals, mse on one output, two rounds, and the
# final evaluation reports RMSE, MAE and R² per site in metrics.jsonl and
# the coordinator's log (issue 13 item 1).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "model.loss=mse" "algorithm.name=fedavg" "algorithm.local_epochs=2"
RUN=$TEST_TMP/run
cat >"$TEST_TMP/schema.yaml" <<'EOF2'
header: true
columns: [x1, x2, x3, {name: y, kind: label, rule: regression}]
EOF2
i=0
for s in "${FED_SITES[@]}"; do
  awk -v seed=$((21 + i)) 'BEGIN { srand(seed); print "x1,x2,x3,y";
    for (r = 0; r < 200; r++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand() * 2 - 1;
      printf "%.4f,%.4f,%.4f,%.4f\n", a, b, c, 3 * a + b - 2 * c + 0.1 * (rand() - 0.5) } }' \
    >"$TEST_TMP/data/$s.csv"
  python3 - "$TEST_TMP/sites/$s.yaml" <<'PY'
import re, sys
p = sys.argv[1]
t = open(p).read()
t = re.sub(r"  schema:\n(    .*\n)+", "  schema: ../schema.yaml\n", t)
open(p, "w").write(t)
PY
  i=$((i + 1))
done
sed -i 's|^  spec: .*|  spec: mlp:3-8-1|' "$TEST_TMP/coordinator.yaml"
printf 'data:\n  schema: schema.yaml\n' >>"$TEST_TMP/coordinator.yaml"

fed_run_to_end
wait "$LAST_PID" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds"
for s in "${FED_SITES[@]}"; do
  line=$(grep "\"event\":\"eval\".*\"site\":\"$s\"" "$RUN/metrics.jsonl") || fail "no eval line for $s"
  echo "$line"
  python3 - "$line" <<'PY' || fail "$s: regression metrics missing or not finite"
import json, math, sys
e = json.loads(sys.argv[1])
for k in ("rmse", "mae", "r2", "rmse_before", "rmse_local"):
    assert k in e and math.isfinite(e[k]), k
assert e["rmse"] >= 0 and e["mae"] >= 0 and e["mae"] <= e["rmse"] + 1e-9
assert abs(e["rmse"] ** 2 - e["loss"]) < 1e-3 * max(1.0, e["loss"]), (e["rmse"], e["loss"])
PY
done
grep -q "eval after round 2, site site-a: adapted loss .* rmse .* mae .* r2" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator's log does not show the regression metrics"
echo "ok: a regression source ran two federated rounds and reported RMSE, MAE and R²"
