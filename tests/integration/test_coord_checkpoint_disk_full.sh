#!/usr/bin/env bash
# A bad day for the coordinator's state files, with a real full disk: the
# checkpoint directory is a 256 KiB tmpfs, the run uses federated
# standardisation and an int8 compressed broadcast (so its checkpoints are
# version 2, holding θ̂, docs/AUDIT.md). Three coordinators in turn, the
# same three site agents throughout:
#  1. the volume is full before the start: scaling.state cannot be written,
#     so the coordinator stops with that reason (exit status 1), leaves no
#     temporary file and no scaling.state behind;
#  2. freed, the run starts again and pools the scaling; after a few rounds
#     the volume fills: the next checkpoint cannot be written, the
#     coordinator stops naming the last round on disk, leaving only whole
#     checkpoints (each loads: `metafl report`);
#  3. freed, a third coordinator resumes from the last version 2
#     checkpoint and scaling.state and finishes: θ equals `metafl simulate`
#     of the same config bit for bit, and the audit log verifies.
# Needs root (mount); without it the test says SKIPPED and why.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

VOL=$TEST_TMP/vol
mkdir -p "$VOL"
if ! mount -t tmpfs -o size=256k tmpfs "$VOL" 2>"$TEST_TMP/mount.err"; then
  echo "SKIPPED: cannot mount a tmpfs here ($(cat "$TEST_TMP/mount.err")); the full-disk"
  echo "         checks of checkpoint v2 and scaling.state did NOT run"
  exit 0
fi
_umount_then_cleanup() {
  local rc=$?
  set +e
  for pid in "${_PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount "$VOL" 2>/dev/null || umount -l "$VOL" 2>/dev/null || true
  (exit $rc)
  _cleanup
}
trap _umount_then_cleanup EXIT

ROUNDS=12
# rounds long enough (a few hundred ms) to fill the volume between two
fed_setup $ROUNDS "data.standardize=federated" "rounds.broadcast_encoding=int8" \
  model.spec=mlp:3-64-64-1 algorithm.outer_steps=10 algorithm.inner_steps=10
for s in "${FED_SITES[@]}"; do
  sed -i 's/^  standardize: site$/  standardize: federated/' "$TEST_TMP/sites/$s.yaml"
done
printf '\noutput:\n  checkpoint_dir: %s\n' "$VOL/ck" >>"$TEST_TMP/coordinator.yaml"
cd "$TEST_TMP"
mkdir -p "$VOL/ck"
fill() { dd if=/dev/zero of="$VOL/filler" bs=4k >/dev/null 2>&1 || true; }
leftovers() { find "$VOL/ck" -name '*.tmp*' -o -name '.*' -type f | grep -q .; }

# 1. full before the start: scaling.state cannot be written
fill
start_bg coordinator1 metafl-coordinator --config coordinator.yaml
C1=$LAST_PID
for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval; done
wait_for 30 bash -c "! kill -0 $C1 2>/dev/null" || fail "the coordinator ran on without its scaling record"
wait "$C1" && fail "the coordinator exited 0 without its scaling record"
grep -q 'federated standardisation: cannot record the scaling: .*No space left on device' coordinator1.log ||
  { tail -n 5 coordinator1.log; fail "no 'cannot record the scaling' with ENOSPC"; }
[ ! -e "$VOL/ck/scaling.state" ] || fail "a scaling.state was left on a full volume"
! leftovers || { ls -la "$VOL/ck"; fail "a temporary file was left in the checkpoint directory"; }
[ "$(fed_rounds_done run)" -eq 0 ] || fail "a round closed without the scaling on record"

# 2. freed: the run starts; after 2 rounds the volume fills again
rm -f "$VOL/filler"
start_bg coordinator2 metafl-coordinator --config coordinator.yaml
C2=$LAST_PID
rounds_at_least() { [ "$(fed_rounds_done run)" -ge "$1" ]; }
wait_for 60 rounds_at_least 2 || fail "no rounds after space was freed"
fill
wait_for 60 bash -c "! kill -0 $C2 2>/dev/null" || fail "the coordinator ran on without checkpoints"
wait "$C2" && fail "the coordinator exited 0 after a checkpoint failed"
at=$(fed_rounds_done run)
echo "the checkpoint after round $((at + 1)) met the full volume"
[ "$at" -lt $ROUNDS ] || fail "the run finished before the volume filled (too fast to test)"
grep -q "round $((at + 1)): cannot write the checkpoint; stopping (θ of round $at is the last on disk)" coordinator2.log ||
  { grep -i checkpoint coordinator2.log | tail -n 5; fail "no 'cannot write the checkpoint' naming round $at"; }
grep -q 'checkpoint: .*No space left on device' coordinator2.log ||
  fail "the checkpoint error does not give the errno's text"
! leftovers || { ls -la "$VOL/ck"; fail "a partial checkpoint was left in the directory"; }
[ -s "$VOL/ck/scaling.state" ] || fail "scaling.state lost"
ls "$VOL/ck" | grep -q "round-0*$at\.ckpt" || { ls "$VOL/ck"; fail "no checkpoint of round $at"; }

# 3. freed: a third coordinator resumes and finishes
rm -f "$VOL/filler"
start_bg coordinator3 metafl-coordinator --config coordinator.yaml
C3=$LAST_PID
wait_for 90 bash -c "! kill -0 $C3 2>/dev/null" || fail "the resumed coordinator did not finish"
wait "$C3" || { rc=$?; tail -n 20 coordinator3.log; fail "the resumed coordinator exited with status $rc"; }
grep -q "resumed from .*round-.*ckpt" coordinator3.log || fail "the third coordinator did not resume"
grep -q 'pooled scaling of .* is on record' coordinator3.log ||
  fail "the third coordinator did not read scaling.state"
[ "$(fed_rounds_done run)" -ge $ROUNDS ] || fail "expected $ROUNDS rounds"
metafl audit verify run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "the audit log does not verify"; }
# simulate writes its checkpoints beside its run, not on the volume
sed -i "s|^  checkpoint_dir: .*|  checkpoint_dir: sim-ck|" coordinator.yaml
fed_expect_simulate_match run
echo "ok: full volume at scaling.state and at a v2 checkpoint: stopped with the reason, nothing partial left; resumed = simulate"
