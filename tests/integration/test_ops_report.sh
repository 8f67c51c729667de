#!/usr/bin/env bash
# `metafl report` on a real daemon run (coordinator + 3 site agents over
# CURVE, an evaluation after every round): the per-hospital table (adapted
# / local-only / global accuracy and AUROC, sensitivity, specificity, n, k)
# carries the numbers of the last eval lines in metrics.jsonl; --json the
# same; --md and --html write PNG plots drawn by gnuplot; a privacy column
# appears only when the metrics carry epsilon; a bad line is named
# FILE:LINE. The run dir alone is enough for `metafl export` (status.json
# names the model).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 3 "eval.every=1"
RUN=$TEST_TMP/run
fed_run_to_end
cd "$TEST_TMP"

metafl report run >report.txt || fail "report failed"
cat report.txt
grep -q "^3 rounds closed" report.txt || fail "no rounds line"
grep -Eq "^  hospital +role +k held-out \| adapted meta +\| local only +\| global as-is" report.txt ||
  fail "no table header"
# Every site's row equals its last eval line (accuracy, AUROC, local, global, sens, spec, n, k).
for s in "${FED_SITES[@]}"; do
  want=$(grep "\"event\":\"eval\".*\"site\":\"$s\"" run/metrics.jsonl | tail -n 1 | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
f = lambda k: "%.3f" % e[k]
print("%s train %d %d | %s %s | %s %s | %s %s | %s %s" % (e["site"], e["n_support"], e["n"],
  f("accuracy"), f("auroc"), f("accuracy_local"), f("auroc_local"), f("accuracy_before"),
  f("auroc_before"), f("sensitivity"), f("specificity")))')
  got=$(grep "^  $s " report.txt | tr -s ' ' | sed 's/^ //')
  [ "$got" = "$want" ] || fail "row of $s: got '$got', want '$want'"
done
grep -q "epsilon" report.txt && fail "a privacy column without privacy metrics"

metafl report run --json r.json --md md/report.md >/dev/null 2>&1 && fail "wrote into a missing directory"
mkdir -p md html
metafl report run --json r.json --md md/report.md >/dev/null || fail "report --md failed"
metafl report run --html html/report.html >/dev/null || fail "report --html failed"
python3 - <<'PY' || fail "report files wrong"
import json
r = json.load(open("r.json"))
assert r["rounds"] == 3 and len(r["hospitals"]) == 3, r
for h in r["hospitals"]:
    assert 0 <= h["adapted"]["accuracy"] <= 1 and 0 <= h["local_only"]["auroc"] <= 1, h
    assert h["evaluation"] == "live" and h["role"] == "train", h
for d, doc in (("md", "report.md"), ("html", "report.html")):
    text = open(f"{d}/{doc}").read()
    for png in ("report-loss.png", "report-accuracy.png"):
        assert png in text, (doc, png)
        data = open(f"{d}/{png}", "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, (d, png, len(data))
assert "| site-a | train | 5 |" in open("md/report.md").read()
assert "<table>" in open("html/report.html").read()
PY

# The privacy hook: eval lines with epsilon (as the privacy work will write
# them) add a column.
for s in "${FED_SITES[@]}"; do
  grep "\"event\":\"eval\".*\"site\":\"$s\"" run/metrics.jsonl | tail -n 1 |
    sed 's/}$/,"epsilon":1.25,"delta":1e-05}/'
done >dp.jsonl
metafl report run dp.jsonl >dp.txt || fail "report with privacy failed"
grep -q "| epsilon" dp.txt || fail "no privacy column"
grep -Eq "^  site-a .* \| +1\.250$" dp.txt || fail "site-a's epsilon not shown: $(grep site-a dp.txt)"
grep -q "evaluated OFFLINE (metafl-site-agent --evaluate, same code): site-a site-b site-c" dp.txt ||
  fail "lines from a file not marked offline"

# Errors: a bad line named, a missing run dir.
printf '{"event":"eval","site":"x"}\nnot json\n' >bad.jsonl
if metafl report bad.jsonl 2>err.txt >/dev/null; then fail "a bad line was accepted"; fi
grep -q "bad.jsonl:2: not a JSON line" err.txt || fail "unhelpful: $(cat err.txt)"
if metafl report nowhere 2>err.txt >/dev/null; then fail "a missing run was accepted"; fi
grep -q "nowhere" err.txt || fail "unhelpful: $(cat err.txt)"

# The run dir alone exports (status.json names the model).
metafl export run --out m.safetensors >/dev/null || fail "export RUN_DIR failed"
grep -aq "\"theta_blake2b\":\"$(fed_final_hash run)\"" m.safetensors || fail "export RUN_DIR: wrong θ"
echo ok
