#!/usr/bin/env bash
# Data for the treatment-matching app: r-cran-survival's `colon` (Moertel
# et al., adjuvant chemotherapy for stage B/C colon cancer, a randomised
# trial of 929 patients: Obs(ervation), Lev(amisole), Lev+5FU; LGPL like
# the survival package), converted with Rscript (r-base-core) into one CSV
# per hospital. One row per patient (the recurrence record, etype 1):
# baseline covariates, and the label arm_good = arm * 2 + good, with arm
# 0 Obs, 1 Lev, 2 Lev+5FU and good = 1 when the patient was recurrence-free
# at 3 years (1095 days). A patient censored before 3 years without a
# recurrence has no known outcome and is left out. The trial records no
# centre, so patients are dealt to the hospitals by id modulo 4
# (hospital-new gets id % 4 == 3). Missing cells (nodes, differ) are "NA".
# usage: prepare.sh DATA_DIR
set -euo pipefail
OUT=${1:?usage: prepare.sh DATA_DIR}
command -v Rscript >/dev/null ||
  { echo "prepare.sh: Rscript is missing: deploy/install-deps.sh installs r-base-core r-cran-survival" >&2; exit 1; }
mkdir -p "$OUT"
Rscript --vanilla - "$OUT" <<'R'
out <- commandArgs(trailingOnly = TRUE)[1]
suppressMessages(library(survival))
d <- colon[colon$etype == 1, ]
horizon <- 1095
known <- d$status == 1 | d$time >= horizon
d <- d[known, ]
good <- as.integer(!(d$status == 1 & d$time < horizon))
d$arm_good <- (as.integer(d$rx) - 1L) * 2L + good
cols <- c("id", "sex", "age", "obstruct", "perfor", "adhere", "nodes", "differ",
          "extent", "surg", "node4", "arm_good")
sites <- c("hospital-a", "hospital-b", "hospital-c", "hospital-new")
for (i in 0:3) {
  s <- d[d$id %% 4 == i, cols]
  write.csv(s, file.path(out, paste0(sites[i + 1], ".csv")), row.names = FALSE, quote = FALSE)
}
R
