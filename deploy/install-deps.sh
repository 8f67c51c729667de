#!/usr/bin/env bash
# Installs, from Debian's packages, every build, test and run dependency of
# metafl that this machine lacks. Idempotent: with everything present it only
# checks and returns. Needs root or sudo only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config clang            # compilers (clang for libFuzzer)
  libclang-rt-14-dev                          # libFuzzer + sanitizer runtimes for clang
  libzmq3-dev                                 # ZeroMQ with CURVE
  libprotobuf-c-dev protobuf-c-compiler       # wire messages
  libsodium-dev                               # keys, signatures, hashes
  libgfshare-dev                              # Shamir shares of secure aggregation's secrets
  libopenblas-dev                             # sgemm
  libyaml-dev                                 # configs
  zlib1g-dev                                  # gzipped IDX
  libcmocka-dev                               # unit tests
  cppcheck clang-tidy                         # make lint
  python3                                     # demo data extraction, report tables
  dataset-fashion-mnist                       # few-shot image data (IDX)
  r-base-core r-cran-survival                 # monitoring app data: pbcseq via Rscript (51 MB; configs/apps/monitoring/prepare.sh)
  gnuplot-nox                                 # benchmark plots, metafl report's PNGs
  nftables                                    # test: sites behind a drop-inbound firewall (netns)
  python3-yaml                                # test: docker-compose.yml checks
  fakeroot                                    # make deb (root-owned files without root)
  python3-grpcio python3-numpy                # bench only: bench/flower_ref.sh's Flower-like reference (not needed by make test)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-deps: error: missing packages (${missing[*]}) and this user is neither root" >&2
  echo "  nor allowed to sudo without a password. Ask an administrator to run:" >&2
  echo "  apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
