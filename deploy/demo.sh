#!/usr/bin/env bash
# make demo: five hospitals, federated meta-learning over CurveZMQ on this
# machine, and a new hospital that adapts the result with a few cases.
#
#   1. Wisconsin Diagnostic Breast Cancer (deploy/get-wdbc.sh) is split into
#      five hospitals that differ in size, case mix, prevalence and
#      "scanner" (configs/demo/hospitals.tsv; docs/DEMO.md says why).
#   2. Keys for the coordinator and each hospital (metafl keygen), configs.
#   3. A coordinator and FOUR site agents on 127.0.0.1 run federated
#      Reptile rounds (progress shown), then every hospital scores the
#      result on its own held-out patients.
#   4. The FIFTH hospital, which never trained, joins a second coordinator
#      session LIVE over CurveZMQ: that session resumes from the training
#      run's last checkpoint with every round done, waits for the hospital
#      (rounds.wait_for_sites) and sends it the final meta-initialisation as
#      an EvalTask; the hospital adapts it with K labelled cases of its own
#      and reports.
#   5. A table per hospital: the adapted meta-initialisation vs a model
#      trained locally on the same K cases vs the global model without
#      adaptation, also written to build/demo/report.json (which says, per
#      hospital, how it was evaluated: "live" = the coordinator's EvalTask).
#
# Before training, federated model selection (docs/SELECTION.md) tries the
# default grid of candidate settings around the configured one, each for a
# few rounds, scored on validation rows the hospitals hold out of their
# training rows, and the run trains the winner (DEMO_SELECTION=0: off). At
# the evaluation each hospital picks its own adaptation steps and rate by
# 5-fold cross-validation on its k cases (eval.adapt_search;
# DEMO_ADAPT_SEARCH=0: the chosen setting's rate and steps everywhere).
#
# Feature scaling (DEMO_STANDARDIZE, default federated): before anything
# else the four training hospitals send the count, sums and sums of squares
# of their fit rows, the coordinator pools them into one mean and scale per
# feature, and every task (the new hospital's too) carries it; every site's
# config says standardize: federated, its consent (docs/DATA.md).
# DEMO_STANDARDIZE=site: each hospital its own training rows' statistics.
#
# Environment: DEMO_QUICK=1 (few rounds, for CI), DEMO_PRIVACY=record (every
# hospital trains with record-level DP-SGD: configs/demo/privacy-record.yaml,
# docs/PRIVACY.md), DEMO_ROUNDS, DEMO_K
# (labelled cases per hospital, default 20), DEMO_DIR (default build/demo),
# BUILD (build dir whose bin/ holds the binaries, default build) or
# METAFL_BIN (the binaries' dir itself, as for the integration tests).
# Every process started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
BIN=${METAFL_BIN:-$ROOT/$BUILD/bin}
DEMO=${DEMO_DIR:-$ROOT/build/demo}
HOSPITALS=$ROOT/configs/demo/hospitals.tsv
if [ "${DEMO_QUICK:-0}" = 1 ]; then ROUNDS=${DEMO_ROUNDS:-4}; else ROUNDS=${DEMO_ROUNDS:-30}; fi
K=${DEMO_K:-20}
SELECTION=${DEMO_SELECTION:-1}
# Feature scaling: federated = one mean and scale per feature pooled from
# the training hospitals' fit rows (docs/DATA.md; every site opts in);
# site = each hospital its own training rows' statistics.
# With DEMO_PRIVACY=record the default is site: the pooled moments are
# unnoised statistics of the rows, which a DP demo does not send.
if [ "${DEMO_PRIVACY:-}" = record ]; then STANDARDIZE=${DEMO_STANDARDIZE:-site}; else
  STANDARDIZE=${DEMO_STANDARDIZE:-federated}; fi
case "$STANDARDIZE" in federated|site) ;; *) echo "DEMO_STANDARDIZE must be federated or site" >&2; exit 2 ;; esac
ADAPT_SEARCH=${DEMO_ADAPT_SEARCH:-1}
if [ "${DEMO_QUICK:-0}" = 1 ]; then SEL_ROUNDS=2; else SEL_ROUNDS=5; fi
T0=$(date +%s)

RUN_NAME=demo
RUN_LOGS=$DEMO/logs
# shellcheck source=deploy/run-lib.sh
source "$ROOT/deploy/run-lib.sh"

for b in metafl metafl-coordinator metafl-site-agent; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make' first (make demo does)"
done

# ---- 1. data --------------------------------------------------------------
say "Wisconsin Diagnostic Breast Cancer -> five hospitals"
WDBC=$ROOT/build/data/breast_cancer.csv
if [ ! -s "$WDBC" ]; then
  [ -f deploy/get-wdbc.sh ] || die "deploy/get-wdbc.sh is missing (it extracts the data set)"
  bash deploy/get-wdbc.sh >/dev/null
fi
[ -s "$WDBC" ] || die "$WDBC was not created by deploy/get-wdbc.sh"
rm -rf "$DEMO"
mkdir -p "$DEMO"/{data,keys,allow,allow-new,logs,run,run-join}
chmod 700 "$DEMO/keys"

# The split is deterministic (a Park-Miller generator written out here, so
# mawk and gawk give the same hospitals). Malignant cases are ordered by
# tumour area: the referral centre gets the largest, the screening clinic
# the smallest, the others a shuffled mix; benign cases are shuffled. Then
# each hospital's "scanner" rescales size features, shifts texture and adds
# noise. Label: malignant = 1.
awk -F'\t' -v out="$DEMO/data" -v wdbc="$WDBC" '
function rnd() { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
function normal(   u, v) { u = rnd(); v = rnd(); if (u < 1e-12) u = 1e-12;
                             return sqrt(-2 * log(u)) * cos(6.283185307179586 * v) }
function shuffle(a, n,   i, j, t) { for (i = n; i > 1; i--) { j = int(rnd() * i) + 1;
                                     t = a[i]; a[i] = a[j]; a[j] = t } }
BEGIN {
  seed = 20261124
  names = "radius_mean texture_mean perimeter_mean area_mean smoothness_mean compactness_mean " \
          "concavity_mean concave_points_mean symmetry_mean fractal_dimension_mean radius_se " \
          "texture_se perimeter_se area_se smoothness_se compactness_se concavity_se " \
          "concave_points_se symmetry_se fractal_dimension_se radius_worst texture_worst " \
          "perimeter_worst area_worst smoothness_worst compactness_worst concavity_worst " \
          "concave_points_worst symmetry_worst fractal_dimension_worst"
  nn = split(names, hdr, " ")
  FS = ","; line = 0
  while ((getline row < wdbc) > 0) {
    line++
    if (line == 1) continue                 # "569,30,malignant,benign"
    nf = split(row, f, ",")
    if (nf != 31) { printf "%s:%d: expected 31 fields, found %d\n", wdbc, line, nf > "/dev/stderr"; exit 2 }
    if (f[31] == 0) { nm++; mal[nm] = row; area[nm] = f[4] + 0 } else { nb++; ben[nb] = row }
  }
  if (nm != 212 || nb != 357) { printf "%s: expected 212 malignant and 357 benign rows, found %d and %d\n", wdbc, nm, nb > "/dev/stderr"; exit 2 }
  # malignant by area, largest first (insertion sort: 212 rows)
  for (i = 2; i <= nm; i++) { r = mal[i]; a = area[i]; j = i - 1
    while (j >= 1 && area[j] < a) { mal[j + 1] = mal[j]; area[j + 1] = area[j]; j-- }
    mal[j + 1] = r; area[j + 1] = a }
  shuffle(ben, nb)
  FS = "\t"
}
/^#/ || NF < 9 { next }
{ nh++; id[nh] = $1; wm[nh] = $3; wb[nh] = $4; mix[nh] = $5; sc[nh] = $6; tx[nh] = $7; nz[nh] = $8 }
END {
  if (nh != 5) { print "hospitals.tsv: expected 5 hospitals" > "/dev/stderr"; exit 2 }
  top = 1; bottom = nm
  for (h = 1; h <= nh; h++) if (mix[h] == "large") { for (k = 0; k < wm[h]; k++) take[h, k] = mal[top++] }
  for (h = 1; h <= nh; h++) if (mix[h] == "small") { for (k = 0; k < wm[h]; k++) take[h, k] = mal[bottom--] }
  nmid = 0; for (i = top; i <= bottom; i++) mid[++nmid] = mal[i]
  shuffle(mid, nmid); m = 1
  for (h = 1; h <= nh; h++) if (mix[h] == "mixed") { for (k = 0; k < wm[h]; k++) take[h, k] = mid[m++] }
  if (m - 1 != nmid) { printf "hospitals.tsv: malignant counts leave %d cases unassigned\n", nmid - m + 1 > "/dev/stderr"; exit 2 }
  b = 1
  for (h = 1; h <= nh; h++) {
    file = out "/" id[h] ".csv"
    s = ""; for (c = 1; c <= nn; c++) s = s hdr[c] ","; print s "malignant" > file
    n = 0
    for (k = 0; k < wm[h]; k++) rows[++n] = take[h, k]
    for (k = 0; k < wb[h]; k++) rows[++n] = ben[b++]
    shuffle(rows, n)
    for (r = 1; r <= n; r++) {
      split(rows[r], f, ",")
      for (c = 1; c <= 30; c++) {
        v = f[c] + 0
        if (c == 1 || c == 3 || c == 11 || c == 13 || c == 21 || c == 23) v *= sc[h]
        if (c == 4 || c == 14 || c == 24) v *= sc[h] * sc[h]
        if (c == 2 || c == 22) v += tx[h]
        v *= 1 + nz[h] * normal()
        f[c] = sprintf("%.6g", v)
      }
      s = ""; for (c = 1; c <= 30; c++) s = s f[c] ","
      print s (f[31] == 0 ? 1 : 0) > file
    }
    close(file)
    printf "    %-11s %3d cases, %5.1f%% malignant\n", id[h], n, 100 * wm[h] / n
  }
  if (b - 1 != nb) { printf "hospitals.tsv: benign counts leave %d cases unassigned\n", nb - b + 1 > "/dev/stderr"; exit 2 }
}' "$HOSPITALS"

mapfile -t TRAIN_SITES < <(awk -F'\t' '!/^#/ && NF >= 9 && $9 == "train" {print $1}' "$HOSPITALS")
mapfile -t NEW_SITES < <(awk -F'\t' '!/^#/ && NF >= 9 && $9 == "new" {print $1}' "$HOSPITALS")

# ---- 2. keys ----------------------------------------------------------------
say "keys (metafl keygen): coordinator + ${#TRAIN_SITES[@]} hospitals + ${#NEW_SITES[@]} new"
"$BIN/metafl" keygen coordinator --dir "$DEMO/keys" >/dev/null
for s in "${TRAIN_SITES[@]}" "${NEW_SITES[@]}"; do
  "$BIN/metafl" keygen "$s" --dir "$DEMO/keys" >/dev/null
done
for s in "${TRAIN_SITES[@]}"; do cp "$DEMO/keys/$s.pub" "$DEMO/allow/"; done
for s in "${NEW_SITES[@]}"; do cp "$DEMO/keys/$s.pub" "$DEMO/allow-new/"; done

# ---- 3. configs -------------------------------------------------------------
# One coordinator config per session; the join session resumes from the
# training session's checkpoints with no rounds left, so it only evaluates.
coord_config() { # FILE RUN_DIR ALLOW_DIR WAIT_FOR
  cat >"$1" <<EOF
coordinator:
  listen: tcp://127.0.0.1:*
  key: keys/coordinator.key
  allow_dir: $3
  run_dir: $2
model:
  spec: mlp:30-16-1
  loss: bce
  init_seed: 7
algorithm:
  name: reptile
  inner_steps: 5
  inner_lr: 0.05
  meta_batch: 4
  outer_steps: 5
  outer_lr: 0.5
  batch_size: 32
  k_shot: $K
rounds:
  count: $ROUNDS
  wait_for_sites: $4
  min_sites: $4
  deadline_s: 30
  seed: 42
server:
  optimizer: sgd
  lr: 1.0
eval:
  every: 0
  adapt_steps: 20
  adapt_lr: 0.05
  adapt_search: $([ "$ADAPT_SEARCH" = 1 ] && echo true || echo false)
  deadline_s: 60
selection:
  enabled: $([ "$SELECTION" = 1 ] && echo true || echo false)
  rounds: $SEL_ROUNDS
data:
  standardize: $STANDARDIZE
output:
  checkpoint_dir: run/checkpoints
  audit_log: $2/coordinator.audit
  metrics: $2/metrics.jsonl
  status: $2/status.json
EOF
}
coord_config "$DEMO/coordinator.yaml" run allow "${#TRAIN_SITES[@]}"
coord_config "$DEMO/coordinator-join.yaml" run-join allow-new "${#NEW_SITES[@]}"

site_config() { # SITE ENDPOINT
  cat >"$DEMO/site-$1.yaml" <<EOF
site:
  id: $1
  key_file: keys/$1.key
coordinator:
  endpoint: $2
  public_key: keys/coordinator.pub
data:
  source: csv
  path: data/$1.csv
  train_fraction: 0.6
  split_seed: 3
  standardize: $STANDARDIZE
  schema:
    header: true
    on_missing: error
    columns:
$(head -n 1 "$DEMO/data/$1.csv" | tr ',' '\n' | sed '$d' | sed 's/^/      - /')
      - {name: malignant, kind: label, rule: class, n_classes: 2}
eval:
  support_cases: $K
  local_only_steps: 100
runtime:
  threads: 1
audit:
  log: run/$1.audit
limits:
  heartbeat_s: 1
EOF
  if [ "${DEMO_PRIVACY:-}" = record ]; then
    grep -v '^#' "$ROOT/configs/demo/privacy-record.yaml" >>"$DEMO/site-$1.yaml"
  fi
}
# A fresh demo's audit logs hold no privacy ledger yet: start one (ignored,
# with a warning, by an agent whose log already has one).
LEDGER_FLAG=()
if [ "${DEMO_PRIVACY:-}" = record ]; then LEDGER_FLAG=(--new-privacy-ledger); fi


# ---- 4. federated training --------------------------------------------------
if [ "$SELECTION" = 1 ]; then
  say "coordinator + ${#TRAIN_SITES[@]} site agents on 127.0.0.1 (CurveZMQ): model selection, then $ROUNDS rounds"
else
  say "coordinator + ${#TRAIN_SITES[@]} site agents on 127.0.0.1 (CurveZMQ), $ROUNDS rounds of Reptile"
fi
"$BIN/metafl-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
COORD=$!; PIDS+=("$COORD")
wait_for 20 grep -q "listening on" "$DEMO/logs/coordinator.log" ||
  die "the coordinator did not start listening"
EP=$(endpoint_of "$DEMO/logs/coordinator.log")
for s in "${TRAIN_SITES[@]}"; do
  site_config "$s" "$EP"
  "$BIN/metafl-site-agent" --config "$DEMO/site-$s.yaml" "${LEDGER_FLAG[@]}" >"$DEMO/logs/$s.log" 2>&1 &
  PIDS+=("$!")
done

METRICS=$DEMO/run/metrics.jsonl
shown=0
sel_shown=0
if [ "$SELECTION" = 1 ]; then
  echo "    (model selection: each candidate setting trains $SEL_ROUNDS rounds; every hospital scores it"
  echo "     on validation rows held out of its training rows; its test rows are not touched)"
fi
echo "    (query loss: the hospitals' mean loss on each task's query cases after adapting"
echo "     on its support cases; at the round's θ -> after their local meta-training)"
# Prints the selection and round lines not shown yet.
show_progress() {
  if [ -f "$METRICS" ]; then
    # One snapshot per poll: selection lines and round lines in file order.
    grep '}$' "$METRICS" >"$DEMO/logs/metrics.snapshot" || true  # whole lines only
    SNAP=$DEMO/logs/metrics.snapshot
    n=$(grep -c '"event":"selection_candidate"\|"event":"selection"' "$SNAP" || true)
    if [ "$n" -gt "$sel_shown" ]; then
      grep '"event":"selection_candidate"\|"event":"selection"' "$SNAP" |
        sed -n "$((sel_shown + 1)),${n}p" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["event"] == "selection":
        print("    chosen: candidate %d, %s" % (e["winner"], e["setting"]))
    else:
        print("    candidate %2d: mean validation %s %.3f  %s" % (e["candidate"], e["rule"], e["score"], e["setting"]))'
      sel_shown=$n
    fi
    n=$(grep -c '"event":"round"' "$SNAP" || true)
    if [ "$n" -gt "$shown" ]; then
      grep '"event":"round"' "$SNAP" | sed -n "$((shown + 1)),${n}p" | awk '
        { r = $0; sub(/.*"round":/, "", r); sub(/,.*/, "", r)
          t = $0; sub(/.*"rounds":/, "", t); sub(/,.*/, "", t)
          a = $0; sub(/.*"accepted":/, "", a); sub(/,.*/, "", a)
          lb = $0; sub(/.*"loss_before":/, "", lb); sub(/,.*/, "", lb)
          la = $0; sub(/.*"loss_after":/, "", la); sub(/,.*/, "", la)
          if (lb == "null" || la == "null")  # DP on: the hospitals do not send losses
            printf "    round %3d/%d: %d hospitals, training losses not sent (DP)\n", r, t, a
          else
            printf "    round %3d/%d: %d hospitals, mean query loss %.4f at θ -> %.4f after local meta-training\n", r, t, a, lb, la }'
      shown=$n
    fi
  fi
}
while kill -0 "$COORD" 2>/dev/null; do
  show_progress
  [ $(( $(date +%s) - T0 )) -lt 170 ] || die "training did not finish within the time budget"
  sleep 0.2
done
show_progress # the lines written after the last poll
wait "$COORD" || die "the coordinator exited with an error (see $DEMO/logs/coordinator.log)"
[ "$shown" -ge "$ROUNDS" ] || die "only $shown of $ROUNDS rounds closed"
n_eval=$(grep -c '"event":"eval"' "$METRICS" || true)
[ "$n_eval" -ge "${#TRAIN_SITES[@]}" ] ||
  die "only $n_eval of ${#TRAIN_SITES[@]} hospitals reported their evaluation"
run_stop_all

# ---- 5. the new hospital joins ------------------------------------------------
say "${NEW_SITES[*]} (never trained) joins and adapts the meta-initialisation with $K cases"
cp -r "$DEMO/run/checkpoints" "$DEMO/run-join/" 2>/dev/null || true
# The join session resumes from the training run's last checkpoint: all
# rounds are done, so it only sends the final θ out for evaluation once the
# new hospital is connected (rounds.wait_for_sites).
sed -i 's|checkpoint_dir: run/checkpoints|checkpoint_dir: run-join/checkpoints|' \
  "$DEMO/coordinator-join.yaml"
"$BIN/metafl-coordinator" --config "$DEMO/coordinator-join.yaml" \
  >"$DEMO/logs/coordinator-join.log" 2>&1 &
COORD=$!; PIDS+=("$COORD")
wait_for 20 grep -q "listening on" "$DEMO/logs/coordinator-join.log" ||
  die "the join coordinator did not start listening"
EP=$(endpoint_of "$DEMO/logs/coordinator-join.log")
for s in "${NEW_SITES[@]}"; do
  site_config "$s" "$EP"
  "$BIN/metafl-site-agent" --config "$DEMO/site-$s.yaml" "${LEDGER_FLAG[@]}" --exit-after-eval \
    >"$DEMO/logs/$s.log" 2>&1 &
  PIDS+=("$!")
done
JOIN_METRICS=$DEMO/run-join/metrics.jsonl
# Live path: the join coordinator waits for the new hospital, sends it the
# final θ as an EvalTask, logs its report to run-join/metrics.jsonl and
# exits when the evaluation is over; the agent exits after its evaluation.
# Fallback (a coordinator that ends the resumed run before the hospital
# connects, as before the round engine waited for wait_for_sites): the
# hospital adapts the same checkpoint offline with the identical code
# (metafl-site-agent --evaluate), and report.json says "offline".
joined() { grep -q '"event":"eval"' "$JOIN_METRICS" 2>/dev/null || ! kill -0 "$COORD" 2>/dev/null; }
wait_for 60 joined || die "the join session neither evaluated nor ended within 60 s"
declare -A EVAL_PATH=()
for s in "${NEW_SITES[@]}"; do
  if grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$JOIN_METRICS" 2>/dev/null; then
    EVAL_PATH[$s]=live
  fi
done
if [ "${#EVAL_PATH[@]}" -eq "${#NEW_SITES[@]}" ]; then
  wait_for 30 eval '! kill -0 "$COORD"' || die "the join coordinator did not stop after its evaluation"
  wait "$COORD" || die "the join coordinator exited with an error (see $DEMO/logs/coordinator-join.log)"
  for s in "${NEW_SITES[@]}"; do
    printf '    %-11s connected over CurveZMQ, received the final θ (EvalTask), adapted, reported\n' "$s"
  done
else
  echo "    (the join session closed before ${NEW_SITES[*]} connected; adapting the published"
  echo "     checkpoint offline instead: metafl-site-agent --evaluate)"
  for s in "${NEW_SITES[@]}"; do
    [ -n "${EVAL_PATH[$s]:-}" ] && continue
    "$BIN/metafl-site-agent" --config "$DEMO/site-$s.yaml" --evaluate "$DEMO/run/checkpoints" \
      --coordinator-config "$DEMO/coordinator.yaml" >>"$DEMO/run-join/offline-eval.jsonl" 2>>"$DEMO/logs/$s.log" ||
      die "offline evaluation at $s failed (see $DEMO/logs/$s.log)"
    EVAL_PATH[$s]=offline
  done
fi
run_stop_all

# ---- 6. audit ---------------------------------------------------------------
say "audit: every hospital's signed, hash-chained log of what left it (metafl audit verify)"
# One line per log: the verifier's "ok: N records, ... (M site update
# signatures checked)" as two numbers; the full message only on failure.
audit_line() { # NAME LOG NOTE
  local out n sigs
  out=$("$BIN/metafl" audit verify "$2" --keys "$DEMO/keys" 2>&1) ||
    { printf '    %-11s NOT INTACT\n%s\n' "$1" "$out" >&2; die "the audit log of $1 does not verify"; }
  n=$(sed -n 's/^ok: \([0-9]*\) record.*/\1/p' <<<"$out")
  sigs=$(sed -n 's/.*(\([0-9]*\) site update signature.*/\1/p' <<<"$out")
  local rw=records, uw=updates
  [ "$n" = 1 ] && rw=record,
  [ "$sigs" = 1 ] && uw=update
  printf '    %-11s ok  %4s %-8s %4s site-signed %s checked%s\n' "$1" "$n" "$rw" "$sigs" "$uw" "$3"
}
for s in "${TRAIN_SITES[@]}"; do audit_line "$s" "$DEMO/run/$s.audit" ""; done
audit_line coordinator "$DEMO/run/coordinator.audit" "  (every accepted update)"
# The new hospital's log verifies too, and holds no update: it never trained.
for s in "${NEW_SITES[@]}"; do
  audit_line "$s" "$DEMO/run/$s.audit" "  (joined after training: nothing sent)"
done
echo "    all $(( ${#TRAIN_SITES[@]} + ${#NEW_SITES[@]} + 1 )) logs: hash chains intact, every record signed by its writer"

# ---- 7. the table and report.json ------------------------------------------------
say "results: each hospital's held-out patients (adapted on $K labelled cases)"
# metafl report reads both sessions' metrics (the training run, then the
# join session; an offline fallback's lines as a file, marked offline) and
# writes the table and report.json; --sites names, orders and describes
# the hospitals.
OFFLINE=()
[ -s "$DEMO/run-join/offline-eval.jsonl" ] && OFFLINE=("$DEMO/run-join/offline-eval.jsonl")
"$BIN/metafl" report "$DEMO/run" "$DEMO/run-join" "${OFFLINE[@]}" --sites "$HOSPITALS" \
  --json "$DEMO/report.json" | sed -n '2,$p' || die "some hospital has no evaluation (see the table)"
echo
echo "  adapted meta  = the federated meta-initialisation adapted on the hospital's k cases"
if [ "$ADAPT_SEARCH" = 1 ]; then
  echo "                  (rate and steps: each hospital's own, by 5-fold cross-validation on its k cases)"
else
  echo "                  (rate and steps: the chosen setting's)"
fi
echo "  local only    = a model trained from scratch on the same k cases (at least 100 steps)"
echo "  global as-is  = the federated model used without any local adaptation"
echo
echo "report: $DEMO/report.json; logs: $DEMO/logs/; audit logs: $DEMO/run/*.audit"
echo "demo finished in $(( $(date +%s) - T0 )) s"
