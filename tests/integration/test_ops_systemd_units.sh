#!/usr/bin/env bash
# Both systemd units, installed by `make install` into a scratch prefix (so
# their ExecStart programs exist), pass `systemd-analyze verify` with no
# complaint at all (it exits 0 on many bad values, so any output fails the
# test; a deliberately broken copy proves the check sees them). They name
# no ReadOnlyPaths to directories the install never creates, keep their
# state in StateDirectory=metafl (/var/lib/metafl), and the example site
# config's audit log and the example coordinator's run dir live there,
# where the units may write (under ProtectSystem=strict nothing else is
# writable). A finished run (exit 0) is not restarted: Restart=on-failure.
# Skipped (exit 77, with the reason) only if systemd-analyze cannot run.
source "$(dirname "$0")/lib.sh"
skip() { echo "SKIP: $*"; exit 77; }
command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed (Debian: systemd)"
systemd-analyze --version >/dev/null 2>&1 || skip "systemd-analyze cannot run here"

PREFIX=$TEST_TMP/prefix
make --no-print-directory -C "$ROOT" install PREFIX="$PREFIX" >"$TEST_TMP/install.log" 2>&1 ||
  { cat "$TEST_TMP/install.log"; fail "make install failed"; }
UNITS=("$PREFIX"/lib/systemd/system/metafl-coordinator.service "$PREFIX"/lib/systemd/system/metafl-site-agent.service)
for u in "${UNITS[@]}"; do [ -f "$u" ] || fail "$u not installed"; done
grep -q "ExecStart=$PREFIX/bin/metafl-coordinator --config /etc/metafl/coordinator.yaml" "${UNITS[0]}" ||
  fail "the coordinator unit's ExecStart was not rewritten to the prefix"

out=$(systemd-analyze verify "${UNITS[@]}" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
echo "systemd-analyze verify: both units clean"
sed 's/^ProtectSystem=strict/ProtectSystem=bogus/' "${UNITS[0]}" >"$TEST_TMP/broken.service"
out=$(systemd-analyze verify "$TEST_TMP/broken.service" 2>&1 || true)
[ -n "$out" ] || fail "a broken unit passed: the check cannot fail"

for u in "${UNITS[@]}"; do
  name=$(basename "$u")
  # Every ReadOnlyPaths entry must exist after install or be optional ("-").
  for p in $(sed -n 's/^ReadOnlyPaths=//p' "$u"); do
    case $p in -*) ;; *) fail "$name: ReadOnlyPaths=$p is never created by the install steps" ;; esac
  done
  grep -Eq '^StateDirectory=metafl( |$)' "$u" || fail "$name: no StateDirectory=metafl"
  grep -q '^ProtectSystem=strict' "$u" || fail "$name: not ProtectSystem=strict"
  grep -q '^Restart=on-failure' "$u" || fail "$name: a finished run (exit 0) would be restarted"
  grep -q '^User=metafl' "$u" || fail "$name: not run as metafl"
done

# The example configs write only under /var/lib/metafl (the StateDirectory).
site_audit=$(sed -n 's/^  log: //p' "$PREFIX/share/metafl/configs/site.yaml")
case $site_audit in /var/lib/metafl/*) ;; *) fail "example site audit log '$site_audit' is not under /var/lib/metafl" ;; esac
run_dir=$(sed -n 's/^  run_dir: //p' "$PREFIX/share/metafl/configs/coordinator.yaml")
case $run_dir in /var/lib/metafl/*) ;; *) fail "example coordinator run_dir '$run_dir' is not under /var/lib/metafl" ;; esac
# ... and their audit dir is one the unit creates (StateDirectory list).
grep -q '^StateDirectory=metafl metafl/audit$' "${UNITS[1]}" || fail "site unit does not create /var/lib/metafl/audit"
echo ok
