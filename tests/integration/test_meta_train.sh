#!/usr/bin/env bash
# `metafl train` and `metafl eval` end to end on a small sinusoid
# experiment: progress lines, a better held-out MSE after training, the
# JSON report, saved safetensors that `eval` reloads to the same numbers,
# the from-scratch baseline, and config errors that name FILE:LINE:key.
source "$(dirname "$0")/lib.sh"

metafl train --help | grep -- "--config" >/dev/null || fail "train --help"
metafl eval --help | grep -- "--scratch" >/dev/null || fail "eval --help"

cfg=$TEST_TMP/sin.yaml
cat >"$cfg" <<'YAML'
seed: 3
data:
  source: sinusoid
task:
  k_shot: 10
  q_query: 10
learner:
  algo: maml
  model: "mlp:1-40-40-1"
  loss: mse
  inner_steps: 1
  inner_lr: 0.005
  meta_batch: 10
  outer_lr: 0.001
train:
  steps: 1500
  log_every: 500
eval:
  tasks: 50
  steps: 5
  lr: 0.005
YAML

metafl train --config "$cfg" --report "$TEST_TMP/r.json" --save "$TEST_TMP/p.safetensors" \
  >"$TEST_TMP/train.log" 2>&1 || fail "train failed"
[ "$(grep -c '^step ' "$TEST_TMP/train.log")" = 3 ] || fail "expected 3 progress lines"
before=$(grep -A1 '^before' "$TEST_TMP/train.log" | sed -n 's/.*loss \([0-9.]*\).*/\1/p')
after=$(grep -A1 '^after' "$TEST_TMP/train.log" | sed -n 's/.*loss \([0-9.]*\).*/\1/p')
awk -v a="$after" -v b="$before" 'BEGIN { exit !(a < b) }' || fail "MSE $before -> $after"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r['progress'])==3; \
assert r['after']['mean']['loss'] < r['before']['mean']['loss']" "$TEST_TMP/r.json" \
  || fail "report"

# eval reloads the saved state and reproduces train's final numbers.
metafl eval --config "$cfg" --params "$TEST_TMP/p.safetensors" >"$TEST_TMP/eval.log" 2>&1 \
  || fail "eval failed"
again=$(sed -n 's/.*loss \([0-9.]*\).*/\1/p' "$TEST_TMP/eval.log")
[ "$again" = "$after" ] || fail "eval $again != train $after"
metafl eval --config "$cfg" --scratch --steps 20 >"$TEST_TMP/scratch.log" 2>&1 \
  || fail "eval --scratch failed"
grep -q '^scratch: 50 held-out tasks, 20 adaptation steps' "$TEST_TMP/scratch.log" \
  || fail "scratch line"

# Config errors name the file, the line and the key; exit code 1.
sed 's/  inner_lr: 0.005/  inner_lr: fast/' "$cfg" >"$TEST_TMP/bad.yaml"
if metafl train --config "$TEST_TMP/bad.yaml" 2>"$TEST_TMP/bad.log"; then fail "bad config accepted"; fi
grep -q "bad.yaml:12:.*learner.inner_lr" "$TEST_TMP/bad.log" || { cat "$TEST_TMP/bad.log"; fail "bad error"; }
sed 's/  algo: maml/  algo: mamal/' "$cfg" >"$TEST_TMP/bad2.yaml"
if metafl train --config "$TEST_TMP/bad2.yaml" 2>"$TEST_TMP/bad2.log"; then fail "bad algo accepted"; fi
grep -q "bad2.yaml:8:.*learner.algo.*mamal" "$TEST_TMP/bad2.log" || { cat "$TEST_TMP/bad2.log"; fail "algo error"; }
sed 's/  steps: 1500/  stepz: 1500/' "$cfg" >"$TEST_TMP/bad3.yaml"
if metafl train --config "$TEST_TMP/bad3.yaml" 2>"$TEST_TMP/bad3.log"; then fail "typo accepted"; fi
grep -q "bad3.yaml:.*stepz" "$TEST_TMP/bad3.log" || { cat "$TEST_TMP/bad3.log"; fail "typo error"; }
# A state saved for another model is refused with the reason.
sed 's/mlp:1-40-40-1/mlp:1-20-1/' "$cfg" >"$TEST_TMP/other.yaml"
if metafl eval --config "$TEST_TMP/other.yaml" --params "$TEST_TMP/p.safetensors" 2>"$TEST_TMP/o.log"; then
  fail "wrong model accepted"
fi
grep -q "mlp:1-40-40-1" "$TEST_TMP/o.log" || fail "wrong-model message"
echo "ok"
