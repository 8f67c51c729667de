#!/usr/bin/env bash
# deploy/app-kshot.sh APP [--variant V] [--seeds N] [--quick] [--ks "1 5 10"]:
# the federated meta-initialisation against local-only training and against
# centralised meta-training on the same classes, per site, for several k
# (labelled cases per class), mean ± std over seeds (docs/APPS.md).
#
# Per seed S:
#   1. federated: deploy/app.sh APP [--variant V] --seeds N (the daemons
#      over CurveZMQ), unless --reuse and build/apps/APP[-V]/seed-S/ exists;
#   2. centralised: the same coordinator config and algorithm in ONE process
#      (`metafl simulate`) with one pooled site holding the union of the
#      training sites' classes (sites.tsv `classes` column; an IDX site's
#      training split is the same image set at every site, so the pooled
#      training rows are the union of the sites'), meta_batch × the number
#      of training sites so each round sees as many tasks as the federation;
#   3. every hospital (training sites and the new one) evaluates both final
#      θ offline (`metafl-site-agent --evaluate`) with k·(its classes)
#      labelled cases, for each k: adapted federated, adapted centralised,
#      and local only (a fresh model trained on the same cases).
# Output: build/apps/APP[-V]/kshot.jsonl and kshot.txt (the table). A
# method whose evaluation takes any k·classes cases (not N-way tasks: e.g.
# ProtoNets) gets about k per class (every class present).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
usage() {
  cat <<'USAGE'
usage: deploy/app-kshot.sh APP [--variant V] [--seeds N] [--quick] [--ks "1 5 10"] [--reuse]
  APP          a directory under configs/apps/ whose sites.tsv has a classes column
  --variant V  the algorithm (configs/apps/APP/coordinator-V.yaml; default coordinator.yaml)
  --seeds N    seeds 1..N (default 1)
  --quick      a few rounds (CI)
  --ks LIST    labelled cases per class to evaluate with (default "1 5 10")
  --reuse      keep existing federated runs (build/apps/APP-V/seed-S)
Output: build/apps/APP[-V]/kshot.jsonl, build/apps/APP[-V]/kshot.txt
USAGE
}
APP=""; VARIANT=""; SEEDS=1; QUICK=(); KS="1 5 10"; REUSE=0
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --variant) VARIANT=${2:?--variant needs a name}; shift 2 ;;
    --seeds) SEEDS=${2:?--seeds needs a number}; shift 2 ;;
    --quick) QUICK=(--quick); shift ;;
    --ks) KS=${2:?--ks needs a list}; shift 2 ;;
    --reuse) REUSE=1; shift ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$APP" ] || { usage >&2; exit 2; }; APP=$1; shift ;;
  esac
done
[ -n "$APP" ] || { usage >&2; exit 2; }
case $SEEDS in ''|*[!0-9]*|0) echo "app-kshot: --seeds must be a positive number" >&2; exit 2 ;; esac
for k in $KS; do
  case $k in ''|*[!0-9]*|0) echo "app-kshot: --ks: '$k' is not a positive number" >&2; exit 2 ;; esac
done
CONF=$ROOT/configs/apps/$APP
[ -f "$CONF/sites.tsv" ] || { echo "app-kshot: no application '$APP'" >&2; exit 2; }
grep -q '^#id.*	classes	' "$CONF/sites.tsv" ||
  { echo "app-kshot: $CONF/sites.tsv has no classes column (the pooled site needs the classes)" >&2; exit 2; }
BIN=${METAFL_BIN:-$ROOT/${BUILD:-build}/bin}
OUT=$(realpath -m "${APP_DIR:-$ROOT/build/apps/$APP${VARIANT:+-$VARIANT}}")
RUN_NAME=app-kshot
RUN_LOGS=$OUT
# shellcheck source=deploy/run-lib.sh
source "$ROOT/deploy/run-lib.sh"

if [ "$REUSE" = 0 ] || [ ! -d "$OUT/seed-$SEEDS" ]; then
  APP_DIR=$OUT METAFL_BIN=$BIN bash "$ROOT/deploy/app.sh" "$APP" ${VARIANT:+--variant "$VARIANT"} \
    --seeds "$SEEDS" "${QUICK[@]}" || die "the federated run failed"
fi

# sites.tsv: id, role and the number of classes of each site; the pooled
# classes are the union over the training sites.
mapfile -t ROWS < <(awk -F'\t' '/^#id/ { for (i = 1; i <= NF; i++) h[i] = $i; next }
  /^#/ || !NF { next }
  { for (i = 1; i <= NF; i++) { if (h[i] == "classes") c = $i; if (h[i] == "role") r = $i }
    gsub(/[][ ]/, "", c); print $1 "\t" r "\t" c }' "$CONF/sites.tsv")
POOLED=$(for r in "${ROWS[@]}"; do IFS=$'\t' read -r _ role cls <<<"$r";
  if [ "$role" = train ]; then tr ',' '\n' <<<"$cls"; fi; done | sort -n -u | paste -sd, -)
NTRAIN=$(for r in "${ROWS[@]}"; do IFS=$'\t' read -r _ role _ <<<"$r"; echo "$role"; done | grep -c '^train$')
[ -n "$POOLED" ] && [ "$NTRAIN" -ge 1 ] || die "no training site with classes in $CONF/sites.tsv"

: >"$OUT/kshot.jsonl"
for seed in $(seq 1 "$SEEDS"); do
  D=$OUT/seed-$seed
  C=$D/central
  RUN_LOGS=$C
  rm -rf "$C"; mkdir -p "$C/keys" "$C/allow" "$C/run"
  chmod 700 "$C/keys"
  "$BIN/metafl" keygen pooled --dir "$C/keys" >/dev/null
  cp "$C/keys/pooled.pub" "$C/allow/"
  # The pooled site: the app's site.yaml with the union of the classes.
  sed -e "s|@SITE@|pooled|g" -e "s|@ENDPOINT@|tcp://127.0.0.1:1|g" -e "s|@SEED@|$seed|g" \
      -e "s|@DATA@|$OUT/data|g" -e "s|@classes@|[$POOLED]|g" \
      -e "s|^\(  support_cases:\) *@[a-z_]*@|\1 20|" -e "s|@[a-z_]*@|x|g" \
      -e "s|keys/pooled.key|$C/keys/pooled.key|" -e "s|run/pooled.audit|$C/run/pooled.audit|" \
      "$CONF/site.yaml" >"$C/site-pooled.yaml"
  # The federation's coordinator config, one process, meta_batch × sites.
  awk -v n="$NTRAIN" -v dir="$C" '
    /^  meta_batch:/ { print "  meta_batch: " ($2 * n) "   # the federation'"'"'s tasks per step, pooled"; next }
    /^  allow_dir:/ { print "  allow_dir: " dir "/allow"; next }
    /^  key:/ { next }
    /^  wait_for_sites:|^  min_sites:/ { print "  " $1 " 1"; next }
    { print }
    END { print "sites:\n  - " dir "/site-pooled.yaml" }' "$D/coordinator.yaml" |
    sed "s|: run/|: $C/run/|; s|: run$|: $C/run|" >"$C/coordinator.yaml"
  say "$APP (${VARIANT:-default}) seed $seed: centralised meta-training, one process, pooled classes [$POOLED]"
  (cd "$D" && "$BIN/metafl" simulate --config "$C/coordinator.yaml" --run-dir "$C/run") \
    >"$C/simulate.log" 2>&1 || die "metafl simulate failed (see $C/simulate.log)"

  say "$APP (${VARIANT:-default}) seed $seed: every hospital evaluates both θ with k = $KS per class"
  for r in "${ROWS[@]}"; do
    IFS=$'\t' read -r site role cls <<<"$r"
    ncls=$(tr ',' '\n' <<<"$cls" | grep -c .)
    for k in $KS; do
      sed "s|^\(  support_cases:\) *[0-9]*|\1 $((k * ncls))|" "$D/site-$site.yaml" >"$C/eval-$site-k$k.yaml"
      for arm in federated central; do
        if [ "$arm" = federated ]; then ck=$D/run/checkpoints; cc=$D/coordinator.yaml
        else ck=$C/run/checkpoints; cc=$C/coordinator.yaml; fi
        line=$(cd "$D" && "$BIN/metafl-site-agent" --config "$C/eval-$site-k$k.yaml" \
                 --evaluate "$ck" --coordinator-config "$cc" 2>>"$C/evaluate.log") ||
          die "$site could not evaluate the $arm θ (see $C/evaluate.log)"
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(seed=int(sys.argv[2]), k=int(sys.argv[3]), arm=sys.argv[4], role=sys.argv[5]); print(json.dumps(d))' \
          "$line" "$seed" "$k" "$arm" "$role" >>"$OUT/kshot.jsonl"
      done
    done
  done
done
python3 "$ROOT/deploy/app-kshot-summary.py" "$OUT/kshot.jsonl" | tee "$OUT/kshot.txt"
