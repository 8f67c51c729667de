#!/usr/bin/env bash
# A model trained with federated standardisation (data.standardize:
# federated) is exported WITH the consortium's pooled mean and scale, and a
# hospital that joins later scales its rows exactly as the model was
# trained (issue 16's loose end). A short `metafl simulate` run (three
# hospitals, pooled scaling) is exported; then a NEW hospital (its own
# data, never in training) is evaluated twice on the final model:
#   - by the coordinator: a join session resumed from the run's checkpoints
#     sends it the EvalTask with the pooled scaling (data.standardize:
#     federated at the site);
#   - on its own, from the export alone: data.standardize: fixed with
#     data.scaling_from: model.safetensors, `metafl-site-agent --evaluate`.
# Both must give the same numbers to the last digit (adapted, as-is and
# local-only). Also: the export's numbers are scaling.state's and its
# digest the audited pooled record's; a federated site evaluating offline
# gets the pooled scaling too; a missing or damaged scaling.state, an
# export edited by hand, a fixed site with other constants, are refused,
# each naming the file.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "data.standardize=federated"
for s in "${FED_SITES[@]}"; do
  sed -i 's/^  standardize: site$/  standardize: federated/' "$TEST_TMP/sites/$s.yaml"
done
cd "$TEST_TMP"
metafl simulate --config coordinator.yaml >sim.out 2>sim.log || { cat sim.log; fail "simulate failed"; }
[ -s run/checkpoints/scaling.state ] || fail "the run wrote no scaling.state"

# The export carries the pooled scaling, exactly scaling.state's numbers,
# with the digest of the coordinator's pooled `scaling` audit record.
out=$(metafl export --config coordinator.yaml --out model.safetensors 2>&1) || fail "export: $out"
grep -q "with the consortium's pooled feature scaling of 3 inputs" <<<"$out" ||
  fail "export does not say it carries the scaling: $out"
python3 - model.safetensors run/checkpoints/scaling.state run/audit.log <<'PY' || fail "export's scaling wrong"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
md = json.loads(raw[8:8 + n])["__metadata__"]
assert md["scaling"] == "federated", md
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
state = open(sys.argv[2]).read().split("\n")
mean = [float.fromhex(v) for v in state[1].split()]
scale = [float.fromhex(v) for v in state[2].split()]
assert [f32(float(v)) for v in md["scaling_center"].split(",")] == mean, (md, mean)
assert [f32(float(v)) for v in md["scaling_scale"].split(",")] == scale, (md, scale)
pooled = [json.loads(l) for l in open(sys.argv[3])]
pooled = [r for r in pooled if r.get("kind") == "scaling" and not r.get("site")]
assert len(pooled) == 1 and pooled[0]["delta_hash"] == md["scaling_blake2b"], (pooled, md)
assert "3 sites" in md["scaling_source"], md
print("export carries scaling.state's numbers; digest = audited pooled record")
PY

# `metafl report` says which scaling the model trained with, and from how
# many sites' fit rows (text, JSON, Markdown); a selection that chose a
# setting without it says "own" (the same metrics plus selection lines).
metafl report run --json report.json --md report.md >report.txt || fail "report failed"
grep -q "^feature scaling: the consortium's pooled mean and scale (data.standardize: federated) from 3 sites, 542 fit rows; the chosen setting uses it" \
  report.txt || { cat report.txt; fail "report does not say the model used the pooled scaling"; }
grep -q "^Feature scaling: the consortium's pooled mean and scale .* from 3 sites, 542 fit rows; the chosen setting uses it" \
  report.md || fail "report.md does not name the scaling"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["scaling"]; assert s=={"kind":"federated","sites":3,"rows":542,"chosen":"pooled"}, s' \
  report.json || fail "report --json scaling wrong"
{ cat run/metrics.jsonl
  echo '{"event":"selection_candidate","candidate":1,"rule":"auroc","score":0.8,"sites":3,"setting":"mlp:3-8-1 reptile scaling federated"}'
  echo '{"event":"selection_candidate","candidate":2,"rule":"auroc","score":0.9,"sites":3,"setting":"mlp:3-8-1 reptile"}'
  echo '{"event":"selection","winner":2,"rule":"auroc"}'; } >own.jsonl
metafl report own.jsonl --json own.json >own.txt 2>&1 || true
grep -A1 "chosen: candidate 2, mlp:3-8-1 reptile$" own.txt |
  grep -q "^feature scaling: .* from 3 sites, 542 fit rows, offered to selection; the chosen setting uses each hospital's own" ||
  { cat own.txt; fail "report does not say the chosen setting uses each site's own scaling"; }
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["scaling"]; assert s["chosen"]=="own", s' \
  own.json || fail "report --json: chosen own"

# A new hospital: its own rows, never in training.
fed_make_csv data/site-new.csv 31 200 0.8
for mode in federated fixed site; do
  sed -e 's/^  id: site-a$/  id: site-new/' -e 's|site-a.csv|site-new.csv|' \
      -e "s/^  standardize: federated$/  standardize: $mode/" -e 's|run-site-a|run-site-new|' \
      sites/site-a.yaml >"sites/new-$mode.yaml"
done
sed -i 's|^  standardize: fixed$|  standardize: fixed\n  scaling_from: ../model.safetensors|' sites/new-fixed.yaml
grep -q 'scaling_from' sites/new-fixed.yaml || fail "new site config not written"
mkdir -p run-site-new

# The coordinator's own evaluation: a join session resumed from the run's
# checkpoints (every round done) evaluates the new hospital live.
mkdir -p run-join && cp -r run/checkpoints run-join/
sed -e 's|^  run_dir: run$|  run_dir: run-join|' -e 's|^  wait_for_sites: 3$|  wait_for_sites: 1|' \
    -e 's|^  min_sites: 2$|  min_sites: 1|' -e '/sites\/site-[bc].yaml/d' \
    -e 's|sites/site-a.yaml|sites/new-federated.yaml|' coordinator.yaml >join.yaml
metafl simulate --config join.yaml >join.out 2>join.log || { cat join.log; fail "join session failed"; }
grep '"event":"eval".*"site":"site-new"' run-join/metrics.jsonl >live.json ||
  fail "the join session did not evaluate the new hospital"

# On its own, from the export: standardize fixed + scaling_from.
metafl-site-agent --config sites/new-fixed.yaml --evaluate run/checkpoints \
  --coordinator-config coordinator.yaml >fixed.json 2>fixed.log || { cat fixed.log; fail "offline (fixed) failed"; }
# And offline as a federated site: the pooled scaling comes from scaling.state.
metafl-site-agent --config sites/new-federated.yaml --evaluate run/checkpoints \
  --coordinator-config coordinator.yaml >fed.json 2>fed.log || { cat fed.log; fail "offline (federated) failed"; }
python3 - live.json fixed.json fed.json <<'PY' || fail "the new hospital's numbers differ"
import json, sys
keys = ["loss", "accuracy", "auroc", "loss_before", "accuracy_before", "auroc_before",
        "accuracy_local", "auroc_local", "n", "n_support"]
live, fixed, fed = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:])
for k in keys:
    assert live[k] == fixed[k] == fed[k], (k, live[k], fixed[k], fed[k])
print("live (pooled scaling) = offline from the export (fixed) = offline federated:",
      {k: live[k] for k in ("loss_before", "auroc_before", "loss", "auroc")})
PY
# `metafl eval --predict --raw`: raw rows scaled with the export's numbers
# give exactly the outputs of rows scaled beforehand (as a site scales:
# float32 of (double x - centre) / scale).
python3 - model.safetensors data/site-new.csv raw.csv scaled.csv <<'PY' || fail "rows not written"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
md = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
c = [f32(float(v)) for v in md["scaling_center"].split(",")]
s = [f32(float(v)) for v in md["scaling_scale"].split(",")]
rows = [l.strip().split(",")[:3] for l in open(sys.argv[2]).read().splitlines()[1:]]
with open(sys.argv[3], "w") as r, open(sys.argv[4], "w") as o:
    for row in rows:
        x = [f32(float(v)) for v in row]
        r.write(",".join(repr(v) for v in x) + "\n")
        o.write(",".join(repr(f32((v - c[j]) / s[j])) for j, v in enumerate(x)) + "\n")
PY
metafl eval --params model.safetensors --predict raw.csv --raw --out p-raw.csv 2>/dev/null ||
  fail "eval --predict --raw failed"
metafl eval --params model.safetensors --predict scaled.csv --out p-scaled.csv 2>/dev/null ||
  fail "eval --predict failed"
cmp -s p-raw.csv p-scaled.csv || fail "--raw predictions differ from pre-scaled rows'"
[ "$(wc -l <p-raw.csv)" -eq 201 ] || fail "expected 200 predictions and a header"
python3 - model.safetensors noscale.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for k in [k for k in h["__metadata__"] if k.startswith("scaling")]:
    del h["__metadata__"][k]
b = json.dumps(h).encode(); b += b" " * (-len(b) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(b)) + b + raw[8 + n:])
PY
if out=$(metafl eval --params noscale.safetensors --predict raw.csv --raw 2>&1); then
  fail "--raw with an export that carries no scaling succeeded"
fi
grep -q "noscale.safetensors: carries no feature scaling" <<<"$out" || fail "no-scaling: $out"

# Its own statistics would not be what the model saw: refused, saying why.
if metafl-site-agent --config sites/new-site.yaml --evaluate run/checkpoints \
     --coordinator-config coordinator.yaml >/dev/null 2>own.log; then
  fail "a site with its own scaling evaluated a federated run offline"
fi
grep -q "data.standardize is not federated" own.log || { cat own.log; fail "no reason given"; }

# Refusals, each naming the file.
cp model.safetensors edited.safetensors
python3 - edited.safetensors <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.index(b'"scaling_center":"') + len('"scaling_center":"')
b[i] = ord("9") if b[i] != ord("9") else ord("8")   # one digit of the first centre
open(p, "wb").write(bytes(b))
PY
sed 's|model.safetensors|edited.safetensors|' sites/new-fixed.yaml >sites/new-edited.yaml
if metafl-site-agent --config sites/new-edited.yaml --check >edit.out 2>&1; then
  fail "an edited export's scaling was accepted"
fi
grep -q "new-edited.yaml:[0-9]*: .*scaling_from.*edited.safetensors.*does not match" edit.out ||
  { cat edit.out; fail "edited export not named"; }
sed -e 's|^  scaling_from: .*$|  center: [0, 0, 0]\n  scale: [1, 1, 1]|' sites/new-fixed.yaml >sites/new-other.yaml
if metafl-site-agent --config sites/new-other.yaml --evaluate run/checkpoints \
     --coordinator-config coordinator.yaml >/dev/null 2>other.log; then
  fail "fixed constants other than the pooled scaling were accepted"
fi
grep -q "not the run's pooled scaling" other.log || { cat other.log; fail "no reason given"; }
# A run without pooled scaling, exported with a fixed-scaling site's config:
# the export carries that site's constants (kind fixed).
sed '/^data:$/,/^  standardize: federated$/d' coordinator.yaml >nofed.yaml
! grep -q 'standardize: federated' nofed.yaml || fail "nofed.yaml still federated"
metafl export --config nofed.yaml --site-config sites/new-other.yaml --out fixed.safetensors \
  >/dev/null 2>fixed-export.log || { cat fixed-export.log; fail "export with a fixed site failed"; }
python3 - fixed.safetensors <<'PY' || fail "fixed export's scaling wrong"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
md = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
assert md["scaling"] == "fixed" and md["scaling_center"] == "0,0,0" and md["scaling_scale"] == "1,1,1", md
assert md["standardize"].startswith("fixed:"), md
PY
cp run/checkpoints/scaling.state scaling.keep
printf 'metafl-scaling-v1 n=3 rows=1 sites=1\n0x1p+0\n' >run/checkpoints/scaling.state
if out=$(metafl export --config coordinator.yaml --out bad.safetensors 2>&1); then
  fail "export with a damaged scaling.state succeeded"
fi
grep -q "run/checkpoints/scaling.state: mean 1 is missing or bad" <<<"$out" || fail "damaged: $out"
rm run/checkpoints/scaling.state
if out=$(metafl export --config coordinator.yaml --out bad.safetensors 2>&1); then
  fail "export without scaling.state succeeded"
fi
grep -q "federated scaling.*run/checkpoints/scaling.state" <<<"$out" || fail "missing: $out"
[ ! -e bad.safetensors ] || fail "a refused export left a file"
# A scaling.state that is not the one the run recorded (its metrics digest).
sed '2s/^[^ ]*/0x1.8p+3/' scaling.keep >run/checkpoints/scaling.state  # first mean := 12
if out=$(metafl export --config coordinator.yaml --out bad.safetensors 2>&1); then
  fail "export with another run's scaling.state succeeded"
fi
grep -q "is not the pooled scaling the run recorded in" <<<"$out" || fail "mismatch: $out"
echo "ok: the export carries the pooled scaling; a new hospital using it = the coordinator's evaluation"
