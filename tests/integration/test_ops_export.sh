#!/usr/bin/env bash
# `metafl export` writes the run's model as safetensors that a reader with
# nothing of metafl in it (Python's standard library) loads and computes
# the same predictions from as `metafl eval --predict`, which also reads
# the coordinator's checkpoint directly (it used to fail with "header
# length ... over the limit"). Metadata: spec, round, θ's BLAKE2b equal to
# the metrics file's, feature names and standardisation from a site
# config. Wrong models and missing descriptions are refused with a reason.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
PY=$ROOT/tests/integration/py/safetensors_predict.py

fed_setup 3
cd "$TEST_TMP"
metafl simulate --config coordinator.yaml >simulate.out 2>simulate.log || fail "simulate failed"
final=$(fed_final_hash run)

metafl export --config coordinator.yaml --site-config sites/site-a.yaml --out model.safetensors \
  >export.out || fail "export failed"
grep -q "exported round 3 of run" export.out || fail "export did not say what it wrote: $(cat export.out)"

# Metadata, read back by the stdlib reader.
python3 - model.safetensors "$final" <<'PYEOF' || fail "export metadata wrong"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
meta = json.loads(raw[8:8 + n])["__metadata__"]
want = {"spec": "mlp:3-8-1", "algo": "reptile", "round": "3", "loss": "bce",
        "theta_blake2b": sys.argv[2], "feature_names": "x1,x2,x3", "label_column": "y",
        "n_inputs": "3", "n_outputs": "1", "format": "metafl-export-1"}
bad = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
assert not bad, bad
assert meta["standardize"].startswith("site:"), meta["standardize"]
PYEOF

# Rows (inputs as the sites feed them) and three ways to predict.
awk 'BEGIN { srand(5); print "x1,x2,x3"; for (i = 0; i < 40; i++)
  printf "%.5f,%.5f,%.5f\n", rand()*4-2, rand()*4-2, rand()*4-2 }' >rows.csv
metafl eval --params model.safetensors --predict rows.csv --out pred-export.csv 2>predict.log ||
  fail "eval --predict on the export failed: $(cat predict.log)"
metafl eval --params run/checkpoints/round-00000003.ckpt --config coordinator.yaml \
  --predict rows.csv >pred-ckpt.csv || fail "eval --predict on the checkpoint failed"
python3 "$PY" model.safetensors rows.csv >pred-python.csv || fail "the stdlib reader failed"
[ "$(wc -l <pred-python.csv)" -eq 40 ] || fail "python predicted $(wc -l <pred-python.csv) rows"
cmp -s pred-export.csv pred-ckpt.csv || fail "export and checkpoint predict differently"
python3 - pred-export.csv pred-python.csv <<'PYEOF' || fail "metafl and the stdlib reader disagree"
import sys
a = [l.split(",") for l in open(sys.argv[1]).read().split("\n")[1:] if l]
b = [l.split(",") for l in open(sys.argv[2]).read().split("\n") if l]
assert len(a) == len(b) == 40, (len(a), len(b))
worst = max(abs(float(x) - float(y)) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
print("largest difference metafl vs python:", worst)
assert worst < 1e-5, worst
PYEOF

# --round picks an older checkpoint; its hash is that round's.
metafl export --config coordinator.yaml --round 2 --out r2.safetensors >/dev/null ||
  fail "export --round 2 failed"
r2=$(grep '"event":"round","round":2,' run/metrics.jsonl | sed 's/.*"theta_blake2b":"\([0-9a-f]*\)".*/\1/')
grep -aq "\"theta_blake2b\":\"$r2\"" r2.safetensors || fail "round 2's export has not round 2's θ"

# Refusals: a run dir without status.json (simulate writes none), another
# model's config, a checkpoint given to --predict without a config.
if metafl export run --out x.safetensors 2>err.txt; then fail "export without a model description succeeded"; fi
grep -q "pass the coordinator's config with --config" err.txt || fail "unhelpful: $(cat err.txt)"
sed 's/spec: mlp:3-8-1/spec: mlp:3-16-1/' coordinator.yaml >other.yaml
if metafl export run/checkpoints/round-00000003.ckpt --config other.yaml --out x.safetensors 2>err.txt; then
  fail "export under another model's config succeeded"; fi
grep -q "was not written for mlp:3-16-1" err.txt || fail "unhelpful: $(cat err.txt)"
if metafl eval --params run/checkpoints/round-00000003.ckpt --config other.yaml --predict rows.csv 2>err.txt >/dev/null; then
  fail "eval of a checkpoint under another model succeeded"; fi
grep -q "written for another model" err.txt || fail "unhelpful: $(cat err.txt)"
if metafl eval --params run/checkpoints/round-00000003.ckpt --predict rows.csv 2>err.txt >/dev/null; then
  fail "eval --predict of a bare checkpoint succeeded"; fi
grep -q "add --config" err.txt || fail "unhelpful: $(cat err.txt)"
printf '1,2\n' >short.csv
if metafl eval --params model.safetensors --predict short.csv 2>err.txt >/dev/null; then fail "a short row was accepted"; fi
grep -q "short.csv:1: 2 values; the model takes 3 inputs" err.txt || fail "unhelpful: $(cat err.txt)"
metafl export --help | grep -- "--site-config" >/dev/null || fail "export --help"
echo "ok: export, python reader and eval agree"
