#!/usr/bin/env bash
# The example configs for a hospital joining later (configs/join/) work as
# docs/SITE-AGENT.md says: a training run with three hospitals (simulate,
# the same config with the training allow-list), the checkpoints copied to
# run-join/, the join coordinator started from configs/join/coordinator-
# join.yaml and the new hospital's agent from site-new-hospital.yaml (only
# the endpoint and data file changed): the new hospital is evaluated on the
# final θ, its report lands in run-join/metrics.jsonl, nothing is trained,
# and `metafl report run run-join` lists it as joined next to the others.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
cd "$TEST_TMP"
cp "$ROOT"/configs/join/*.yaml .
mkdir -p keys/allow keys/allow-new data sites audit

# 30 WDBC-named columns of synthetic cases, a label from a few of them.
make_rows() { # FILE SEED N SHIFT
  python3 - "$@" <<'PY'
import random, sys
path, seed, n, shift = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
cols = [l.strip()[2:] for l in open("site-new-hospital.yaml") if l.startswith("      - ") and "{" not in l]
assert len(cols) == 30, len(cols)
rnd = random.Random(seed)
with open(path, "w") as f:
    f.write(",".join(cols + ["malignant"]) + "\n")
    for _ in range(n):
        x = [rnd.gauss(shift, 1) for _ in cols]
        y = int(x[0] + 0.5 * x[3] - x[7] + rnd.gauss(0, 0.5) > shift * 0.5)
        f.write(",".join("%.4f" % v for v in x) + ",%d\n" % y)
PY
}
PORT=$(fed_free_port)
metafl keygen coordinator --dir keys >/dev/null
i=0
SITES=()
for s in hospital-a hospital-b hospital-c; do
  metafl keygen $s --dir keys >/dev/null
  cp keys/$s.pub keys/allow/
  make_rows data/$s.csv $((20 + i)) 150 "0.$i"
  sed -e "s/new-hospital/$s/g" -e "s#tcp://coordinator.consortium.example:7000#tcp://127.0.0.1:$PORT#" \
    site-new-hospital.yaml >sites/$s.yaml
  sed -i "s#key_file: keys/#key_file: ../keys/#; s#public_key: keys/#public_key: ../keys/#; s#path: data/#path: ../data/#; s#log: audit/#log: ../audit/#" sites/$s.yaml
  SITES+=("  - sites/$s.yaml")
  i=$((i + 1))
done
# The training run: the join config with the training allow-list, its own
# run dir, a short run.
sed -e 's#allow_dir: keys/allow-new#allow_dir: keys/allow#' -e 's#run_dir: run-join#run_dir: run#' \
    -e 's#checkpoint_dir: run-join/checkpoints#checkpoint_dir: run/checkpoints#' \
    -e 's#count: 30 #count: 3 #' -e "s#tcp://0.0.0.0:7000#tcp://127.0.0.1:$PORT#" \
    coordinator-join.yaml >coordinator.yaml
printf 'sites:\n%s\n' "$(printf '%s\n' "${SITES[@]}")" >>coordinator.yaml
metafl simulate --config coordinator.yaml >simulate.out 2>simulate.log || fail "training run failed"
[ "$(fed_rounds_done run)" -eq 3 ] || fail "training run: $(fed_rounds_done run) rounds"

# The join session, as the docs say; the example configs changed only in
# rounds.count (the training run's 3), the endpoint and the data file.
metafl keygen new-hospital --dir keys >/dev/null
cp keys/new-hospital.pub keys/allow-new/
make_rows data/new-hospital.csv 99 120 0.7
mkdir -p run-join && cp -r run/checkpoints run-join/
sed -i -e 's#count: 30 #count: 3 #' -e "s#tcp://0.0.0.0:7000#tcp://127.0.0.1:$PORT#" coordinator-join.yaml
sed -i "s#tcp://coordinator.consortium.example:7000#tcp://127.0.0.1:$PORT#" site-new-hospital.yaml
metafl-site-agent --config site-new-hospital.yaml --check >check.out 2>&1 || { cat check.out; fail "--check of the example"; }
start_bg coordinator metafl-coordinator --config coordinator-join.yaml
COORD=$LAST_PID
start_bg new-hospital metafl-site-agent --config site-new-hospital.yaml --exit-after-eval
SITE=$LAST_PID
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the join session did not end"
wait "$COORD" || fail "the join coordinator failed"
wait_for 20 bash -c "! kill -0 $SITE 2>/dev/null" || fail "the new hospital's agent did not exit"
grep -q '"event":"eval".*"site":"new-hospital"' run-join/metrics.jsonl || fail "no evaluation of the new hospital"
grep -q '"event":"round"' run-join/metrics.jsonl && fail "the join session trained"
grep -q '"n_support":20' run-join/metrics.jsonl || fail "not adapted on its 20 cases"
metafl audit verify audit/new-hospital.audit --keys keys >/dev/null || fail "the new hospital's audit log"
metafl report run run-join >report.txt || { cat report.txt; fail "report"; }
cat report.txt
grep -Eq "^  new-hospital +joined +20 " report.txt || fail "the new hospital is not listed as joined"
grep -Eq "^  hospital-a +train " report.txt || fail "training hospitals missing"
echo ok
