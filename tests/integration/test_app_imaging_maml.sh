#!/usr/bin/env bash
# Federated MAML on the imaging application, short (issue 13: MAML runs
# federated with the 4-block CNN): deploy/app.sh imaging --variant maml
# --quick runs a coordinator and three hospitals over CurveZMQ with a 4-way
# head on ten-class IDX data (N-way episodes, second-order MAML, 2 rounds);
# every hospital is scored on 4-way tasks of its own classes, and the new
# hospital, whose five classes no site trained on, on the five 4-class
# subsets of them.
source "$(dirname "$0")/lib.sh"

FM=/usr/share/datasets/fashion-mnist
[ -r "$FM/train-images-idx3-ubyte.gz" ] ||
  fail "$FM not found: deploy/install-deps.sh installs dataset-fashion-mnist"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$TEST_TMP/app
APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" imaging --variant maml --quick \
  >"$TEST_TMP/app.log" 2>&1 || { cat "$TEST_TMP/app.log"; fail "deploy/app.sh imaging --variant maml --quick failed"; }
R=$OUT/seed-1
[ "$(grep -c '"event":"round".*"accepted":3' "$R/run/metrics.jsonl")" -eq 2 ] ||
  fail "expected 2 rounds with 3 accepted MAML updates"
num() { sed -n "s/.*\"$1\":\([0-9.e-]*\)[,}].*/\1/p" <<<"$2"; }
for s in hospital-a hospital-b hospital-c; do
  line=$(grep "\"event\":\"eval\".*\"site\":\"$s\"" "$R/run/metrics.jsonl") || fail "no eval line for $s"
  # One 4-way task (its four classes), 5 labelled images per class.
  [ "$(num n_support "$line")" -eq 20 ] || fail "$s adapted on $(num n_support "$line") images, not 4 x 5"
done
line=$(grep '"event":"eval".*"site":"hospital-new"' "$R/run-join/metrics.jsonl") ||
  fail "hospital-new did not report"
# Five classes, 20 labelled cases: 4 per class; scored on every 4-class
# subset, so n is 5 x (its held-out images of 4 classes) = 4 x all of them.
[ "$(num n_support "$line")" -eq 20 ] || fail "hospital-new n_support $(num n_support "$line")"
n=$(num n "$line")
[ $((n % 4)) -eq 0 ] && [ "$n" -gt 1000 ] || fail "hospital-new n=$n is not 5 subsets of its held-out images"
acc=$(num accuracy "$line")
# 4-way chance is 0.25; two rounds of MAML adapted with 50 steps do far better.
awk -v a="$acc" 'BEGIN { exit !(a > 0.5 && a <= 1) }' || fail "hospital-new 4-way accuracy $acc is not above 0.5"
echo "ok: imaging app with federated MAML: 3 hospitals, 2 rounds of 4-way episodes over CurveZMQ, new hospital 4-way acc $acc"
