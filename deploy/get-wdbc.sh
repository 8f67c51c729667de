#!/usr/bin/env bash
# Extracts the Wisconsin Diagnostic Breast Cancer table (569 rows, 30
# features) from Debian's python3-sklearn package WITHOUT installing it:
# `apt-get download` the .deb into a temporary folder, unpack it with
# `dpkg-deb -x`, and copy sklearn/datasets/data/breast_cancer.csv to
# build/data/breast_cancer.csv (or to $1). Idempotent: does nothing when the
# file is already there. The CSV is data from a package: never commit it.
#
# File format: the first line is a count header "569,30,malignant,benign";
# then 569 rows of 30 numbers and a target where 0 = malignant and
# 1 = benign (sklearn's encoding). metafl's loader (mfl_wdbc_load) flips it
# so that malignant = 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/build/data/breast_cancer.csv}

if [ -s "$DEST" ]; then
  echo "get-wdbc: $DEST already present"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "get-wdbc: error: '$tool' not found (this script needs Debian's apt)" >&2
    exit 1
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/metafl-wdbc.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# apt-get download needs no root; it writes into the current directory.
# With empty package lists (a fresh or slimmed image), refresh them once
# when we may, then try again.
download() { (cd "$TMP" && apt-get download python3-sklearn >"$TMP/apt.log" 2>&1); }
if ! download; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >>"$TMP/apt.log" 2>&1 || true
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n apt-get update -qq >>"$TMP/apt.log" 2>&1 || true
  fi
fi
if ! download; then
  echo "get-wdbc: error: 'apt-get download python3-sklearn' failed:" >&2
  sed 's/^/  /' "$TMP/apt.log" >&2
  echo "get-wdbc: check the apt sources and network (try 'apt-get update')." >&2
  exit 1
fi

DEB=$(find "$TMP" -maxdepth 1 -name 'python3-sklearn_*.deb' | head -n 1)
if [ -z "$DEB" ]; then
  echo "get-wdbc: error: apt-get reported success but no python3-sklearn .deb is in $TMP" >&2
  exit 1
fi
dpkg-deb -x "$DEB" "$TMP/root"

CSV=$(find "$TMP/root" -path '*sklearn/datasets/data/breast_cancer.csv' | head -n 1)
if [ -z "$CSV" ]; then
  echo "get-wdbc: error: sklearn/datasets/data/breast_cancer.csv not found in $(basename "$DEB")" >&2
  exit 1
fi

# Sanity check before publishing: 1 header line + 569 rows of 31 fields.
rows=$(($(wc -l <"$CSV")))
fields=$(sed -n 2p "$CSV" | awk -F, '{print NF}')
if [ "$rows" -lt 569 ] || [ "$fields" != 31 ]; then
  echo "get-wdbc: error: unexpected format in $CSV ($rows lines, $fields fields)" >&2
  exit 1
fi

mkdir -p "$(dirname "$DEST")"
cp "$CSV" "$DEST.tmp.$$"
mv "$DEST.tmp.$$" "$DEST"
echo "get-wdbc: wrote $DEST (from $(basename "$DEB"))"
