#!/usr/bin/env bash
# deploy/app.sh APP [--seeds N] [--quick] [--rounds R]: one clinical
# application end to end on the real daemons (docs/APPS.md).
#
#   configs/apps/APP/sites.tsv        the hospitals: "#id<TAB>kind<TAB>...<TAB>role"
#                                     (role train or new); other columns are
#                                     substituted into site.yaml as @COLUMN@
#   configs/apps/APP/coordinator.yaml the coordinator, with @ROUNDS@, @SEED@,
#                                     @WAIT@, @ALLOW@, @RUN@ filled in here
#   configs/apps/APP/site.yaml        one site, with @SITE@, @ENDPOINT@,
#                                     @SEED@, @DATA@ and the tsv columns
#   configs/apps/APP/prepare.sh       optional data script: prepare.sh DATA_DIR
#                                     (from Debian packages or ../shared;
#                                     the data is never committed)
#
# Per seed: keys (metafl keygen), a coordinator and the training sites over
# CurveZMQ on 127.0.0.1, federated rounds, evaluation at every site; then a
# second session resumes from the last checkpoint and the new hospital
# (role new, never trained) joins live, adapts the final θ and reports;
# `metafl report` prints the table. With several seeds, a mean ± std table
# over seeds follows (seed s sets init_seed, rounds.seed and split_seed).
#
# Environment: APP_DIR (default build/apps/APP), BUILD / METAFL_BIN as for
# deploy/demo.sh. Every process started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
usage() {
  cat <<'USAGE'
usage: deploy/app.sh APP [--seeds N] [--quick] [--rounds R] [--variant V]
  APP        a directory under configs/apps/ (imaging, ...)
  --seeds N  repeat with seeds 1..N and print mean ± std per site (default 1)
  --quick    a few rounds (QUICK_ROUNDS in sites.tsv's app, default 3): CI
  --rounds R override the number of federated rounds
  --variant V use configs/apps/APP/coordinator-V.yaml (another algorithm)
Output: build/apps/APP/seed-S/{report.json,logs/}, build/apps/APP/summary.txt
USAGE
}
APP=""; SEEDS=1; QUICK=0; ROUNDS_OVERRIDE=""; VARIANT=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --seeds) SEEDS=${2:?--seeds needs a number}; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --rounds) ROUNDS_OVERRIDE=${2:?--rounds needs a number}; shift 2 ;;
    --variant) VARIANT=${2:?--variant needs a name}; shift 2 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$APP" ] || { usage >&2; exit 2; }; APP=$1; shift ;;
  esac
done
[ -n "$APP" ] || { usage >&2; exit 2; }
CONF=$ROOT/configs/apps/$APP
[ -f "$CONF/sites.tsv" ] || { echo "app: no application '$APP' (configs/apps/$APP/sites.tsv is missing)" >&2; exit 2; }
case $SEEDS in ''|*[!0-9]*|0) echo "app: --seeds must be a positive number" >&2; exit 2 ;; esac
BUILD=${BUILD:-build}
BIN=${METAFL_BIN:-$ROOT/$BUILD/bin}
COORD_T=$CONF/coordinator.yaml
[ -z "$VARIANT" ] || COORD_T=$CONF/coordinator-$VARIANT.yaml
[ -f "$COORD_T" ] || { echo "app: $COORD_T is missing" >&2; exit 2; }
OUT=${APP_DIR:-$ROOT/build/apps/$APP${VARIANT:+-$VARIANT}}
RUN_NAME=app
RUN_LOGS=$OUT
# shellcheck source=deploy/run-lib.sh
source "$ROOT/deploy/run-lib.sh"
for b in metafl metafl-coordinator metafl-site-agent; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make' first"
done
# Rounds: the coordinator template's default, or its quick value.
ROUNDS=$(sed -n 's/^# rounds: *\([0-9]*\).*/\1/p' "$COORD_T")
QROUNDS=$(sed -n 's/^# quick_rounds: *\([0-9]*\).*/\1/p' "$COORD_T")
[ "$QUICK" = 1 ] && ROUNDS=${QROUNDS:-3}
[ -n "$ROUNDS_OVERRIDE" ] && ROUNDS=$ROUNDS_OVERRIDE
ROUNDS=${ROUNDS:-10}
T0=$(date +%s)

rm -rf "$OUT"; mkdir -p "$OUT/data"
if [ -f "$CONF/prepare.sh" ]; then
  say "$APP: data (configs/apps/$APP/prepare.sh)"
  bash "$CONF/prepare.sh" "$OUT/data" || die "the data script failed"
fi

mapfile -t HDR < <(grep '^#id' "$CONF/sites.tsv" | sed 's/^#//' | tr '\t' '\n')
ROLE_COL=0
for i in "${!HDR[@]}"; do [ "${HDR[$i]}" = role ] && ROLE_COL=$((i + 1)); done
[ "$ROLE_COL" -gt 0 ] || die "$CONF/sites.tsv has no role column"
mapfile -t TRAIN_SITES < <(awk -F'\t' -v c="$ROLE_COL" '!/^#/ && NF && $c == "train" {print $1}' "$CONF/sites.tsv")
mapfile -t NEW_SITES < <(awk -F'\t' -v c="$ROLE_COL" '!/^#/ && NF && $c == "new" {print $1}' "$CONF/sites.tsv")
[ "${#TRAIN_SITES[@]}" -ge 1 ] || die "$CONF/sites.tsv names no training site"

coord_config() { # FILE RUN ALLOW WAIT SEED
  sed -e "s|@ROUNDS@|$ROUNDS|g" -e "s|@RUN@|$2|g" -e "s|@ALLOW@|$3|g" \
      -e "s|@WAIT@|$4|g" -e "s|@SEED@|$5|g" "$COORD_T" >"$1"
}
site_config() { # DIR SITE ENDPOINT SEED
  local row args=() i
  row=$(awk -F'\t' -v s="$2" '!/^#/ && $1 == s' "$CONF/sites.tsv")
  IFS=$'\t' read -r -a vals <<<"$row"
  for i in "${!HDR[@]}"; do args+=(-e "s|@${HDR[$i]}@|${vals[$i]}|g"); done
  sed -e "s|@SITE@|$2|g" -e "s|@ENDPOINT@|$3|g" -e "s|@SEED@|$4|g" \
      -e "s|@DATA@|$OUT/data|g" "${args[@]}" "$CONF/site.yaml" >"$1/site-$2.yaml"
}

run_seed() { # SEED
  local seed=$1 D=$OUT/seed-$1 s EP COORD
  RUN_LOGS=$D/logs
  mkdir -p "$D"/{keys,allow,allow-new,logs,run,run-join}
  chmod 700 "$D/keys"
  "$BIN/metafl" keygen coordinator --dir "$D/keys" >/dev/null
  for s in "${TRAIN_SITES[@]}" "${NEW_SITES[@]}"; do "$BIN/metafl" keygen "$s" --dir "$D/keys" >/dev/null; done
  for s in "${TRAIN_SITES[@]}"; do cp "$D/keys/$s.pub" "$D/allow/"; done
  for s in "${NEW_SITES[@]}"; do cp "$D/keys/$s.pub" "$D/allow-new/"; done
  coord_config "$D/coordinator.yaml" run allow "${#TRAIN_SITES[@]}" "$seed"
  coord_config "$D/coordinator-join.yaml" run-join allow-new "${#NEW_SITES[@]}" "$seed"
  sed -i 's|checkpoint_dir: run/checkpoints|checkpoint_dir: run-join/checkpoints|' "$D/coordinator-join.yaml"

  say "$APP seed $seed: coordinator + ${#TRAIN_SITES[@]} sites on 127.0.0.1 (CurveZMQ), $ROUNDS rounds"
  "$BIN/metafl-coordinator" --config "$D/coordinator.yaml" >"$D/logs/coordinator.log" 2>&1 &
  COORD=$!; PIDS+=("$COORD")
  wait_for 20 grep -q "listening on" "$D/logs/coordinator.log" || die "the coordinator did not start listening"
  EP=$(endpoint_of "$D/logs/coordinator.log")
  for s in "${TRAIN_SITES[@]}"; do
    site_config "$D" "$s" "$EP" "$seed"
    "$BIN/metafl-site-agent" --config "$D/site-$s.yaml" >"$D/logs/$s.log" 2>&1 &
    PIDS+=("$!")
  done
  local shown=0 n
  local site_pids=("${PIDS[@]:1}") alive p
  while kill -0 "$COORD" 2>/dev/null; do
    alive=0
    for p in "${site_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || die "every site agent exited before the run finished (see $D/logs/)"
    n=$(grep -c '"event":"round"' "$D/run/metrics.jsonl" 2>/dev/null || true)
    if [ "${n:-0}" -gt "$shown" ]; then echo "    round $n/$ROUNDS closed"; shown=$n; fi
    sleep 0.3
  done
  wait "$COORD" || die "the coordinator exited with an error (see $D/logs/coordinator.log)"
  n=$(grep -c '"event":"eval"' "$D/run/metrics.jsonl" || true)
  [ "$n" -ge "${#TRAIN_SITES[@]}" ] || die "only $n of ${#TRAIN_SITES[@]} sites reported their evaluation"
  run_stop_all

  if [ "${#NEW_SITES[@]}" -gt 0 ]; then
    say "$APP seed $seed: ${NEW_SITES[*]} (never trained) joins and adapts the final θ"
    cp -r "$D/run/checkpoints" "$D/run-join/"
    "$BIN/metafl-coordinator" --config "$D/coordinator-join.yaml" >"$D/logs/coordinator-join.log" 2>&1 &
    COORD=$!; PIDS+=("$COORD")
    wait_for 20 grep -q "listening on" "$D/logs/coordinator-join.log" || die "the join coordinator did not start listening"
    EP=$(endpoint_of "$D/logs/coordinator-join.log")
    for s in "${NEW_SITES[@]}"; do
      site_config "$D" "$s" "$EP" "$seed"
      "$BIN/metafl-site-agent" --config "$D/site-$s.yaml" --exit-after-eval >"$D/logs/$s.log" 2>&1 &
      PIDS+=("$!")
    done
    wait_for 300 eval '! kill -0 "$COORD"' || die "the join session did not end within 300 s"
    wait "$COORD" || die "the join coordinator exited with an error (see $D/logs/coordinator-join.log)"
    for s in "${NEW_SITES[@]}"; do
      grep -q "\"event\":\"eval\".*\"site\":\"$s\"" "$D/run-join/metrics.jsonl" ||
        die "$s did not report an evaluation"
    done
    run_stop_all
  fi
  "$BIN/metafl" report "$D/run" "$D/run-join" --sites "$CONF/sites.tsv" --json "$D/report.json" ||
    die "metafl report failed"
}

for seed in $(seq 1 "$SEEDS"); do run_seed "$seed"; done
if [ "$SEEDS" -gt 1 ]; then
  say "$APP${VARIANT:+ ($VARIANT)}: mean ± std over $SEEDS seeds ($OUT/summary.txt)"
  files=()
  for seed in $(seq 1 "$SEEDS"); do files+=("$OUT/seed-$seed/run/metrics.jsonl"); [ -f "$OUT/seed-$seed/run-join/metrics.jsonl" ] && files+=("$OUT/seed-$seed/run-join/metrics.jsonl"); done
  python3 "$ROOT/deploy/app-summary.py" "${files[@]}" | tee "$OUT/summary.txt"
fi
echo "$APP finished in $(( $(date +%s) - T0 )) s; reports in $OUT/seed-*/report.json"
