#!/usr/bin/env bash
# Every binary answers --help (exit 0, a usage line) and --version (its name
# and the VERSION file's number); an unknown metafl command is a usage error.
source "$(dirname "$0")/lib.sh"
version=$(cat "$ROOT/VERSION")
for b in metafl-coordinator metafl-site-agent metafl; do
  out=$("$b" --help) || fail "$b --help exited non-zero"
  grep -q "usage: $b" <<<"$out" || fail "$b --help shows no usage line: $out"
  out=$("$b" --version) || fail "$b --version exited non-zero"
  [ "$out" = "$b $version" ] || fail "$b --version printed '$out', want '$b $version'"
done
set +e
metafl no-such-command 2>"$TEST_TMP/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "unknown command exited $rc, want 2"
grep -q "unknown command 'no-such-command'" "$TEST_TMP/err" || fail "no clear error for an unknown command"
echo "all binaries answer --help and --version"
