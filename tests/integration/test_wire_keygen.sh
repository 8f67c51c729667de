#!/usr/bin/env bash
# metafl keygen: writes NAME.key (0600) and NAME.pub, refuses to overwrite,
# refuses bad names, answers --help.
source "$(dirname "$0")/lib.sh"

d=$TEST_TMP/keys
mkdir -p "$d"
metafl keygen site-a --dir "$d" >"$TEST_TMP/out.log" 2>&1 || fail "keygen failed: $(cat "$TEST_TMP/out.log")"
[ "$(stat -c %a "$d/site-a.key")" = 600 ] || fail "secret key mode is $(stat -c %a "$d/site-a.key")"
head -n 1 "$d/site-a.pub" | grep -x 'metafl-public-key v1' >/dev/null || fail "public key format"
grep -qx 'name: site-a' "$d/site-a.pub" || fail "public key name"
grep -q 'seed' "$d/site-a.pub" && fail "public file leaks the seed"

before=$(sha256sum "$d/site-a.key")
if metafl keygen site-a --dir "$d" >"$TEST_TMP/again.log" 2>&1; then
  fail "keygen overwrote an existing key"
fi
grep -q 'refusing to overwrite' "$TEST_TMP/again.log" || fail "unclear overwrite error: $(cat "$TEST_TMP/again.log")"
[ "$before" = "$(sha256sum "$d/site-a.key")" ] || fail "secret key changed"

(umask 000; metafl keygen site-b --dir "$d" >/dev/null 2>&1) || fail "keygen under umask 000"
[ "$(stat -c %a "$d/site-b.key")" = 600 ] || fail "umask widened the secret key"

if metafl keygen ../escape --dir "$d" >"$TEST_TMP/bad.log" 2>&1; then fail "accepted a path as a name"; fi
metafl keygen --help | grep 'usage: metafl keygen' >/dev/null || fail "--help"
metafl --help | grep keygen >/dev/null || fail "keygen missing from metafl --help"
echo "ok"
