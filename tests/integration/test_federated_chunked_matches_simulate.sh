#!/usr/bin/env bash
# Chunked uploads (issue 17 item 3, docs/WIRE.md "Chunked uploads"): with
# limits.chunked_upload_bytes and upload_chunk_bytes at 4 KiB, every
# site's update of mlp:3-2000-1 (10,001 values) travels as an UpdateBegin
# and 11 chunks of at most 1,024 values; the coordinator checks each
# chunk against the signed hashes, spools it, and folds the update from
# the spool. The real daemons over CurveZMQ and `metafl simulate` must end
# with the same θ bit for bit: float32, and int8 (encoded chunks) clipped
# by the norm bound (the scaled read); the audit log must verify.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

run_both() { # TAG [KEY=VALUE...]
  local tag=$1; shift
  TEST_TMP=$ROOT_TMP/$tag
  mkdir -p "$TEST_TMP"
  fed_setup 1 "model.spec=mlp:3-2000-1" "algorithm.inner_steps=1" "algorithm.outer_steps=1" \
    "limits.chunked_upload_bytes=4K" "limits.upload_chunk_bytes=4K" "$@"
  local run=$TEST_TMP/run
  fed_coordinator
  local coord=$LAST_PID
  for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
  wait_for 90 bash -c "! kill -0 $coord 2>/dev/null" || fail "$tag: coordinator did not finish"
  wait "$coord" || fail "$tag: coordinator exited with status $?"
  grep -q '"event":"round","round":1,.*"accepted":3' "$run/metrics.jsonl" ||
    { tail -n 20 "$TEST_TMP/coordinator.log"; fail "$tag: round 1 did not have 3 accepted updates"; }
  for s in "${FED_SITES[@]}"; do
    grep -q "round 1: .*update sent.* ($CHUNKS chunks)" "$TEST_TMP/$s.log" ||
      { tail -n 5 "$TEST_TMP/$s.log"; fail "$tag: $s did not send its update in $CHUNKS chunks"; }
  done
  metafl audit verify "$run/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.out" 2>&1 ||
    { cat "$TEST_TMP/verify.out"; fail "$tag: audit log does not verify"; }
  local daemon_hash sim_hash
  daemon_hash=$(fed_final_hash "$run")
  metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/sim" \
    >"$TEST_TMP/simulate.out" 2>"$TEST_TMP/simulate.log" || fail "$tag: simulate failed"
  sim_hash=$(fed_final_hash "$TEST_TMP/sim")
  echo "$tag: daemons $daemon_hash, simulate $sim_hash"
  [ -n "$daemon_hash" ] && [ "$daemon_hash" = "$sim_hash" ] ||
    fail "$tag: final θ differs: daemons $daemon_hash, simulate $sim_hash"
}

ROOT_TMP=$TEST_TMP
CHUNKS=11 # 1,024 float32 values a chunk: 6000 + 2000 + 2000 + 1 values -> 6 + 2 + 2 + 1
run_both plain
grep -q 'chunked upload' "$ROOT_TMP/plain/coordinator.log" &&
  fail "plain: the coordinator logged a chunked upload problem"
CHUNKS=5 # int8: 4,096 values a chunk: 6000 + 2000 + 2000 + 1 -> 2 + 1 + 1 + 1
run_both int8-clipped "rounds.upload_encoding=int8" "rounds.norm_bound=0.05" \
  "rounds.norm_action=clip"
grep -q 'clipped from norm' "$ROOT_TMP/int8-clipped/run/audit.log" ||
  fail "int8-clipped: no update was clipped (raise the model's Δ or lower the bound)"
echo "ok: chunked uploads fold the same in the daemons as in simulate"
