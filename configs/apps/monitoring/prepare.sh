#!/usr/bin/env bash
# Data for the health-monitoring app: r-cran-survival's pbcseq (Mayo Clinic
# primary biliary cholangitis trial, 312 patients, 1945 lab visits; LGPL
# like the survival package), converted with Rscript (r-base-core) into one
# long-form CSV per hospital: patient, day, lab values, and
# warn = 1 if the patient died within 730 days after that visit. Patients
# are dealt to the hospitals by id modulo 4 (hospital-new gets id % 4 == 3).
# usage: prepare.sh DATA_DIR
set -euo pipefail
OUT=${1:?usage: prepare.sh DATA_DIR}
command -v Rscript >/dev/null ||
  { echo "prepare.sh: Rscript is missing: deploy/install-deps.sh installs r-base-core r-cran-survival" >&2; exit 1; }
mkdir -p "$OUT"
Rscript --vanilla - "$OUT" <<'R'
out <- commandArgs(trailingOnly = TRUE)[1]
suppressMessages(library(survival))
d <- pbcseq
d$warn <- as.integer(d$status == 2 & (d$futime - d$day) <= 730)
d$lbili <- log(d$bili); d$lprotime <- log(d$protime); d$last <- log(d$ast)
cols <- c("id", "day", "lbili", "albumin", "last", "lprotime", "edema", "warn")
sites <- c("hospital-a", "hospital-b", "hospital-c", "hospital-new")
for (i in 0:3) {
  s <- d[d$id %% 4 == i, cols]
  write.csv(s, file.path(out, paste0(sites[i + 1], ".csv")), row.names = FALSE, quote = FALSE)
}
R
