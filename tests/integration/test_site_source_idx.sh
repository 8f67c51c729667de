#!/usr/bin/env bash
# An IDX image source (Debian's Fashion-MNIST, gzipped) federated over the
# real daemons with the 4-block CNN: three hospitals that each see other
# classes (data.classes), 3-way ProtoNets episodes, two rounds and a final
# evaluation (issue 13 item 1). A hospital that keeps only two classes is
# told at Hello that it cannot form 3-way episodes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

FM=/usr/share/datasets/fashion-mnist
[ -r "$FM/train-images-idx3-ubyte.gz" ] ||
  fail "$FM not found: deploy/install-deps.sh installs dataset-fashion-mnist"
fed_setup 2 "model.spec=cnn4:1x28x28:8:0" "algorithm.name=protonet" "algorithm.n_way=3" \
  "algorithm.k_shot=2" "algorithm.n_query=2" "algorithm.meta_batch=2" "algorithm.outer_steps=1" \
  "eval.adapt_steps=1"
RUN=$TEST_TMP/run
classes=("[0, 1, 2, 3]" "[4, 5, 6]" "[7, 8, 9, 0]")
i=0
for s in "${FED_SITES[@]}"; do
  cat >"$TEST_TMP/sites/$s.yaml" <<EOF2
site: {id: $s, key_file: ../keys/$s.key}
coordinator: {endpoint: "tcp://127.0.0.1:$FED_PORT", public_key: ../keys/coordinator.pub}
data:
  source: idx
  path: $FM/train-images-idx3-ubyte.gz
  labels: $FM/train-labels-idx1-ubyte.gz
  max_rows: 400
  classes: ${classes[$i]}
  train_fraction: 0.75
audit: {log: ../run-$s/audit.log}
limits: {heartbeat_s: 0.5}
EOF2
  i=$((i + 1))
done
metafl-site-agent --config "$TEST_TMP/sites/site-b.yaml" --check >"$TEST_TMP/check.log" 2>&1 ||
  { cat "$TEST_TMP/check.log"; fail "--check failed on an idx site"; }
grep -q "classes      10; training rows per class: 0=0 1=0 2=0 3=0 4=[1-9]" "$TEST_TMP/check.log" ||
  { cat "$TEST_TMP/check.log"; fail "--check does not show site-b's classes"; }

# A fourth hospital with two classes only: refused at Hello with REJECT_DATA.
metafl keygen site-d --dir "$TEST_TMP/keys" >/dev/null
cp "$TEST_TMP/keys/site-d.pub" "$TEST_TMP/allow/"
mkdir -p "$TEST_TMP/run-site-d"
sed -e 's/site-a/site-d/g' -e 's/classes: .*/classes: [1, 2]/' "$TEST_TMP/sites/site-a.yaml" \
  >"$TEST_TMP/sites/site-d.yaml"

fed_coordinator
COORD=$LAST_PID
fed_site site-d
D=$LAST_PID
wait_for 30 bash -c "! kill -0 $D 2>/dev/null" || fail "site-d kept running after the refusal"
grep -q "REJECT_DATA: site site-d: its training rows cannot form 3-way 2-shot episodes" \
  "$TEST_TMP/site-d.log" || fail "site-d was not told it cannot form the episodes"
for s in "${FED_SITES[@]}"; do fed_site "$s"; done
wait_for 240 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds"
for s in "${FED_SITES[@]}"; do
  grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$RUN/metrics.jsonl" || fail "no eval line for $s"
done
echo "ok: idx images with the 4-block CNN, sites seeing different classes, two rounds and an eval"
