#!/usr/bin/env bash
# Test scripts run under `set -o pipefail`. `producer | grep -q X` exits as
# soon as X is seen; a producer with more to write then dies of SIGPIPE and
# the pipeline fails although X was there: a flake that shows under load
# (test_secagg_daemons_dp failed 1 run in 4 this way). Write
# `grep -q X <<<"$out"` or `producer | grep X >/dev/null` instead.
# Prints each offending line as FILE:LINE: text and exits 1 if any.
# Usage: check_test_pipes.sh [TREE]   (default: this repository)
set -u
cd "${1:-$(dirname "$0")/../..}" || exit 2
out=$(grep -nE '\|[[:space:]]*grep[[:space:]]+(-[a-zA-Z]*q|(-[a-zA-Z]+[[:space:]]+)+-[a-zA-Z]*q)' \
        tests/*.sh tests/integration/*.sh tests/hostile/*.sh bench/*.sh deploy/*.sh .ci/run 2>/dev/null)
[ -z "$out" ] && exit 0
echo "$out" | sed 's/$/  <- "| grep -q" under pipefail: the producer can die of SIGPIPE/'
exit 1
