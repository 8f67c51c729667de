#!/usr/bin/env bash
# The house's dependency rules (docs/ARCHITECTURE.md, "Dependency rules"),
# checked over every #include "..." line. Prints each broken rule as
# FILE:LINE: rule, and exits 1 if any is broken. Run by `make lint` and by
# the test runner.
#
#   1. programs -> common -> proto: nothing in common/ includes a program
#      folder (coordinator/, site-agent/, cli/) or a program's header;
#   2. no relative includes ("../x.h"): every include names its folder
#      under common/ (or is a header beside the file);
#   3. only common/wire/ includes generated protobuf headers (*.pb-c.h);
#   4. the numerics and meta-learning layers (common/core, nn, fed, meta,
#      data) and secure aggregation (common/secagg) include neither the wire nor the config (YAML) layer, nor the
#      round engine, the site worker or the audit log.
#
# PENDING lists files that still break rule 3 or 4 while a move is under
# way; a file listed there is reported as "pending", not as a failure. It
# is empty since issue 15 (every file keeps the rules); keep it that way.
# Usage: check_deps.sh [TREE]   (default: this repository)
set -u
cd "${1:-$(dirname "$0")/../..}" || exit 2

PENDING=(
)

fail=0
is_pending() {
  local f=$1 p
  for p in "${PENDING[@]:-}"; do [ "$p" = "$f" ] && return 0; done
  return 1
}
report() { # file line rule
  if is_pending "$1"; then
    echo "pending: $1:$2: $3"
  else
    echo "$1:$2: $3"
    fail=1
  fi
}

while IFS=: read -r file line text; do
  inc=$(printf '%s' "$text" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
  case "$inc" in
    ../*|*/../*) report "$file" "$line" "relative include \"$inc\" (rule 2)" ;;
  esac
  case "$file" in
    common/*)
      case "$inc" in
        coordinator/*|site-agent/*|cli/*|coordinator.h|coord_wire.h|coord_check.h|agent.h|site_check.h|commands.h|meta_common.h)
          report "$file" "$line" "common/ includes program header \"$inc\" (rule 1)" ;;
      esac ;;
  esac
  case "$inc" in
    *.pb-c.h)
      case "$file" in
        common/wire/*) ;;
        *) report "$file" "$line" "generated protobuf header \"$inc\" outside common/wire (rule 3)" ;;
      esac ;;
  esac
  case "$file" in
    common/core/*|common/nn/*|common/fed/*|common/meta/*|common/data/*|common/secagg/*)
      case "$inc" in
        wire/*|config/*|round/*|site/*|audit/*)
          report "$file" "$line" "numerics/meta/data layer includes \"$inc\" (rule 4)" ;;
      esac ;;
  esac
done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' \
           $(find common coordinator site-agent cli -name '*.[ch]' 2>/dev/null | sort) \
         /dev/null)

for p in "${PENDING[@]:-}"; do
  [ -z "$p" ] && continue
  [ -e "$p" ] || { echo "check_deps: PENDING names $p, which no longer exists: drop it"; fail=1; continue; }
done

if [ $fail -ne 0 ]; then
  echo "check_deps: dependency rules broken (docs/ARCHITECTURE.md, \"Dependency rules\")"
  exit 1
fi
echo "check_deps: dependency rules hold"
