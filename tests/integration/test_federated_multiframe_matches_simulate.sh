#!/usr/bin/env bash
# Updates whose tensors span several wire frames (issue 17, large models):
# the coordinator folds, norms, clips and records them run by run where
# they arrived (wire limits.pieces), not from a contiguous copy. With
# mlp:3-100000-1 the first weight tensor (300,000 floats, 1.2 MB) goes out
# in two 1 MiB frames from every site. The real daemons over CurveZMQ and
# `metafl simulate` must end with the same θ bit for bit, with a norm bound
# that clips some updates (the scaled-copy path) and without one, and the
# audit log must verify.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

run_both() { # TAG [KEY=VALUE...]
  local tag=$1; shift
  TEST_TMP=$ROOT_TMP/$tag
  mkdir -p "$TEST_TMP"
  fed_setup 2 "model.spec=mlp:3-100000-1" "algorithm.inner_steps=1" "algorithm.outer_steps=1" "$@"
  local run=$TEST_TMP/run
  fed_coordinator
  local coord=$LAST_PID
  for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
  wait_for 90 bash -c "! kill -0 $coord 2>/dev/null" || fail "$tag: coordinator did not finish"
  wait "$coord" || fail "$tag: coordinator exited with status $?"
  grep -q '"event":"round","round":2,.*"accepted":3' "$run/metrics.jsonl" ||
    fail "$tag: round 2 did not have 3 accepted updates"
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
run_both plain
run_both clipped "rounds.norm_bound=0.05" "rounds.norm_action=clip"
grep -q 'clipped from norm' "$ROOT_TMP/clipped/run/audit.log" ||
  fail "clipped: no update was clipped (raise the model's Δ or lower the bound)"
echo "ok: multi-frame updates fold the same in the daemons as in simulate"
