#!/usr/bin/env bash
# A bad day for the coordinator's state files, with a real full disk: the
# checkpoint directory is a 256 KiB tmpfs, the run uses federated
# standardisation and an int8 compressed broadcast (so its checkpoints are
# version 2, holding θ̂, docs/AUDIT.md). Three coordinators in turn, the
# same three site agents throughout:
#  1. the volume is full before the start: scaling.state cannot be written,
#     so the coordinator stops with that reason (exit status 1), leaves no
#     temporary file and no scaling.state behind;
#  2. with room left for scaling.state and two checkpoints only (the size
#     of one measured from `metafl simulate`'s), the run pools the scaling,
#     saves rounds 1 and 2, and round 3's checkpoint cannot be written: the
#     coordinator stops naming round 2 as the last on disk, leaving only
#     whole checkpoints;
#  3. freed, a third coordinator resumes from the last version 2
#     checkpoint and scaling.state and finishes: θ equals `metafl simulate`
#     of the same config bit for bit, and the audit log verifies.
# Needs root (mount); without it the test says SKIPPED and why.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

VOL=$TEST_TMP/vol
mount_small_tmpfs "$VOL" 256k "the full-disk checks of checkpoint v2 and scaling.state"

ROUNDS=4
fed_setup $ROUNDS "data.standardize=federated" "rounds.broadcast_encoding=int8"
for s in "${FED_SITES[@]}"; do
  sed -i 's/^  standardize: site$/  standardize: federated/' "$TEST_TMP/sites/$s.yaml"
done
cd "$TEST_TMP"
# simulate first (its checkpoints go to sim/checkpoints): the reference θ,
# and the size of one checkpoint of this run (version 2, as the daemon's)
metafl simulate --config coordinator.yaml --run-dir sim >simulate.out 2>simulate.log ||
  { cat simulate.log; fail "simulate failed"; }
want=$(fed_final_hash sim)
ck=$(ls sim/checkpoints/round-*.ckpt | head -n 1)
[ -n "$ck" ] || fail "simulate wrote no checkpoint"
head -c 16 "$ck" | grep -a MFLCKPT >/dev/null || fail "not a checkpoint: $ck"
ck_pages=$(( ($(stat -c %s "$ck") + 4095) / 4096 ))
printf '\noutput:\n  checkpoint_dir: %s\n' "$VOL/ck" >>coordinator.yaml
mkdir -p "$VOL/ck"
fill() { dd if=/dev/zero of="$VOL/filler" bs=4k >/dev/null 2>&1 || true; }
leftovers() { find "$VOL/ck" -name '*.tmp*' -o -name '.*' -type f | grep . >/dev/null; }

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

# 2. room for scaling.state (one page) and two checkpoints only: rounds 1
#    and 2 are saved, round 3's checkpoint meets the full volume
truncate -s "-$(( (1 + 2 * ck_pages) * 4096 ))" "$VOL/filler"
start_bg coordinator2 metafl-coordinator --config coordinator.yaml
C2=$LAST_PID
wait_for 60 bash -c "! kill -0 $C2 2>/dev/null" || fail "the coordinator ran on without checkpoints"
wait "$C2" && fail "the coordinator exited 0 after a checkpoint failed (checkpoints of $ck_pages page(s))"
grep -q "round 3: cannot write the checkpoint; stopping (θ of round 2 is the last on disk)" coordinator2.log ||
  { grep -i checkpoint coordinator2.log | tail -n 5; fail "no 'cannot write the checkpoint' at round 3"; }
grep -q 'checkpoint: .*No space left on device' coordinator2.log ||
  fail "the checkpoint error does not give the errno's text"
[ "$(fed_rounds_done run)" -eq 2 ] || fail "expected rounds 1 and 2 on record"
! leftovers || { ls -la "$VOL/ck"; fail "a partial checkpoint was left in the directory"; }
[ -s "$VOL/ck/scaling.state" ] || fail "scaling.state lost"
[ "$(ls "$VOL/ck" | grep -c '^round-.*\.ckpt$')" -eq 2 ] || { ls "$VOL/ck"; fail "expected the checkpoints of rounds 1 and 2"; }

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
got=$(fed_final_hash run)
echo "daemons $got, simulate $want"
[ -n "$got" ] && [ "$got" = "$want" ] || fail "θ differs from simulate after the resume"
echo "ok: full volume at scaling.state and at a v2 checkpoint: stopped with the reason, nothing partial left; resumed = simulate"
