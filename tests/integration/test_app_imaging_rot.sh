#!/usr/bin/env bash
# The imaging application with rotations as classes (issue 13, the fair
# test of the imaging criterion), short: deploy/app.sh imaging-rot for one
# ProtoNets round over CurveZMQ. Three hospitals read Fashion-MNIST with
# data.rotations (garment c turned q x 90 degrees = class c + 10q) and keep
# different classes across orientations; the new hospital joins live with
# its 20 classes (five garments no site trained on, in every orientation).
source "$(dirname "$0")/lib.sh"

FM=/usr/share/datasets/fashion-mnist
[ -r "$FM/train-images-idx3-ubyte.gz" ] ||
  fail "$FM not found: deploy/install-deps.sh installs dataset-fashion-mnist"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$TEST_TMP/app
APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" imaging-rot --rounds 1 \
  >"$TEST_TMP/app.log" 2>&1 || { cat "$TEST_TMP/app.log"; fail "deploy/app.sh imaging-rot --rounds 1 failed"; }
R=$OUT/seed-1
[ "$(grep -c '"event":"round"' "$R/run/metrics.jsonl")" -eq 1 ] || fail "expected 1 round"
for s in hospital-a hospital-b hospital-c; do
  grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$R/run/metrics.jsonl" || fail "no eval line for $s"
done
# hospital-new holds 20 classes (5 garments x 4 orientations): about 100
# held-out images each, where 5 upright classes would give about 500.
row=$(grep '^  hospital-new ' "$TEST_TMP/app.log") || { cat "$TEST_TMP/app.log"; fail "report table lacks hospital-new"; }
heldout=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "|") { print $(i - 1); exit } }' <<<"$row")
[ "${heldout:-0}" -gt 1500 ] || fail "hospital-new scored $heldout held-out images, not its 20 rotated classes"
line=$(grep '"event":"eval".*"site":"hospital-new"' "$R/run-join/metrics.jsonl") ||
  fail "hospital-new did not report"
acc=$(sed 's/.*"accuracy":\([0-9.e-]*\),.*/\1/' <<<"$line")
# 20-way: chance is 0.05
awk -v a="$acc" 'BEGIN { exit !(a > 0.2) }' || fail "hospital-new accuracy $acc is not above 0.2 (20-way)"
# A hospital's --check says what it loaded: the rotated label space (40
# classes), its 8 classes (0 and 10 = T-shirt upright and turned 90
# degrees), and no warning for the 32 classes it does not hold.
(cd "$R" && "$BIN/metafl-site-agent" --config site-hospital-a.yaml --check) >"$TEST_TMP/check.log" 2>&1 ||
  { cat "$TEST_TMP/check.log"; fail "--check of hospital-a failed"; }
grep -Eq "classes      40; training rows per class: 0=[1-9][0-9]* 1=0 .* 10=[1-9]" "$TEST_TMP/check.log" ||
  { cat "$TEST_TMP/check.log"; fail "--check does not show the rotated classes"; }
grep -q "episodes     each of the 8 classes it holds has at least" "$TEST_TMP/check.log" ||
  { cat "$TEST_TMP/check.log"; fail "--check does not count the 8 classes hospital-a holds"; }
! grep -q "warning: class counts" "$TEST_TMP/check.log" ||
  { cat "$TEST_TMP/check.log"; fail "--check warns about classes hospital-a does not hold"; }
! pgrep -f "$OUT/seed-1/coordinator" >/dev/null || fail "a coordinator outlived deploy/app.sh"
echo "ok: imaging-rot app: 3 hospitals, 1 ProtoNets round over CurveZMQ, the new hospital's 20 rotated classes ($heldout held out, acc $acc)"
