# Helpers for integration tests: sourced, never run. Tests start the real
# binaries from build/bin, poll for conditions with deadlines (never a bare
# sleep for correctness), and clean up every process they start.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${METAFL_BIN:-$ROOT/build/bin}   # METAFL_BIN: test another build
export PATH="$BIN:$PATH"
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/metafl-test.XXXXXX")
_PIDS=()

# Starts a command in the background, its output to $TEST_TMP/NAME.log.
# Usage: start_bg NAME cmd args...   (sets LAST_PID)
start_bg() {
  local name=$1; shift
  "$@" >"$TEST_TMP/$name.log" 2>&1 &
  LAST_PID=$!
  _PIDS+=("$LAST_PID")
}

# Polls `cmd` every 0.1 s until it succeeds or SECONDS_LIMIT passes.
# Usage: wait_for SECONDS_LIMIT cmd args...
wait_for() {
  local limit=$1; shift
  local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%N)" -gt "$deadline" ]; then
      echo "timed out after ${limit}s waiting for: $*" >&2
      return 1
    fi
    sleep 0.1
  done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# A TCP port on 127.0.0.1 for a daemon this test starts, safe while other
# tests run at the same time (tests/run-tests.sh runs several at once, and
# other work trees may run theirs): it lies below the kernel's ephemeral
# range (ip_local_port_range), so no connect() or bind(:0) anywhere can be
# given it between this call and the daemon's bind; it was free when chosen;
# and a lock file in $MFL_PORT_LOCKS (one folder for the machine) naming
# this test's PID keeps every other test from choosing it until _cleanup
# removes the lock. A lock whose test is gone is left alone (another port
# is chosen) and purged once it is an hour old.
MFL_PORT_LOCKS=${MFL_PORT_LOCKS:-/tmp/metafl-test-ports}
free_port() {
  python3 - "$MFL_PORT_LOCKS" "$$" <<'PY'
import errno, os, random, socket, sys, time
locks, owner = sys.argv[1], sys.argv[2]
try:
    os.mkdir(locks)
    os.chmod(locks, 0o1777)
except FileExistsError:
    pass
def alive(path):
    try:
        pid = int(open(path).read().split()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
lo, hi = max(1024, low - 12000), low - 1
for name in os.listdir(locks):  # purge locks of tests long gone
    path = os.path.join(locks, name)
    try:
        if not alive(path) and time.time() - os.stat(path).st_mtime > 3600:
            os.unlink(path)
    except OSError:
        pass
for _ in range(200):
    port = random.randint(lo, hi)
    path = os.path.join(locks, str(port))
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        continue
    os.write(fd, (owner + "\n").encode())
    os.close(fd)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq binds
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        os.unlink(path)
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no free port in %d-%d after 200 tries" % (lo, hi))
PY
}

# Removes the port locks this test holds (free_port).
_release_ports() {
  local f
  for f in "$MFL_PORT_LOCKS"/*; do
    [ -f "$f" ] && [ "$(cat "$f" 2>/dev/null)" = "$$" ] && rm -f "$f"
  done
  return 0
}

_cleanup() {
  local rc=$?
  for pid in "${_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    for f in "$TEST_TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (last 30 lines)"; tail -n 30 "$f"
    done
  fi
  rm -rf "$TEST_TMP"
  _release_ports
}
trap _cleanup EXIT

# mount_small_tmpfs DIR SIZE WHAT: mounts a tmpfs of SIZE (e.g. 256k) on DIR
# for a full-disk test and unmounts it at exit (after stopping the test's
# processes). Without the right to mount (not root) it prints SKIPPED with
# the reason and that WHAT did NOT run, and exits the test with 0.
mount_small_tmpfs() {
  local dir=$1 size=$2 what=$3
  mkdir -p "$dir"
  if ! mount -t tmpfs -o "size=$size" tmpfs "$dir" 2>"$TEST_TMP/mount.err"; then
    echo "SKIPPED: cannot mount a tmpfs here ($(cat "$TEST_TMP/mount.err")); $what did NOT run"
    exit 0
  fi
  _SMALL_TMPFS=$dir
  trap _umount_then_cleanup EXIT
}
_umount_then_cleanup() {
  local rc=$?
  set +e
  for pid in "${_PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount "$_SMALL_TMPFS" 2>/dev/null || umount -l "$_SMALL_TMPFS" 2>/dev/null || true
  (exit $rc)
  _cleanup
}
