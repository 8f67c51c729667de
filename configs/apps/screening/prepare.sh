#!/usr/bin/env bash
# Data for the drug-screening app: a real assay that Debian's rdkit-data
# ships (RDKit's BSD-licensed data; the measurements are from ChEMBL,
# CC BY-SA 3.0): CHEMBL2321810, 1017 compounds of one sulfonamide series
# with their measured pIC50 (/usr/share/RDKit/Contrib/FreeWilson/data/).
# python3-rdkit computes 16 standard 2D descriptors and a 32-bit folded
# Morgan (radius 2) count fingerprint per compound. Compounds are dealt to
# the labs by chemical series (Bemis-Murcko scaffold): scaffolds sorted by
# size (then text) and dealt round-robin, so no scaffold is at two labs and
# lab-new screens series no lab trained on.
# python3-rdkit (148 MB installed) is not in deploy/install-deps.sh: this
# script installs it on demand (apt-get, as root or with sudo -n).
# usage: prepare.sh DATA_DIR
set -euo pipefail
OUT=${1:?usage: prepare.sh DATA_DIR}
PY=/usr/bin/python3
SRC=/usr/share/RDKit/Contrib/FreeWilson/data
have_rdkit() { [ -x "$PY" ] && "$PY" -c 'import rdkit' 2>/dev/null && [ -f "$SRC/CHEMBL2321810.smi" ]; }
if ! have_rdkit; then
  echo "prepare.sh: installing python3-rdkit (and rdkit-data) from Debian for the compound data" >&2
  SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  for i in 1 2 3; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3-rdkit rdkit-data >&2 && break
    sleep 5 # dpkg may be locked by another installer
  done
  have_rdkit || { echo "prepare.sh: python3-rdkit / rdkit-data are missing and could not be installed (apt-get install python3-rdkit rdkit-data as root)" >&2; exit 1; }
fi
mkdir -p "$OUT"
"$PY" - "$SRC" "$OUT" <<'PY'
import csv, os, sys
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem, Descriptors
from rdkit.Chem.Scaffolds import MurckoScaffold
RDLogger.DisableLog("rdApp.*")
src, out = sys.argv[1], sys.argv[2]
act = {}
with open(os.path.join(src, "CHEMBL2321810_act.csv")) as f:
    for row in csv.DictReader(f):
        act[row["Name"]] = float(row["Act"])
desc = ["MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds",
        "RingCount", "NumAromaticRings", "FractionCSP3", "HeavyAtomCount", "NumHeteroatoms",
        "MolMR", "NHOHCount", "NOCount", "NumAliphaticRings", "LabuteASA"]
NBITS = 32
rows, scaf = [], {}
with open(os.path.join(src, "CHEMBL2321810.smi")) as f:
    for line in f:
        smi, name = line.split()
        m = Chem.MolFromSmiles(smi)
        if m is None or name not in act:
            continue
        x = [getattr(Descriptors, d)(m) for d in desc]
        fp = AllChem.GetHashedMorganFingerprint(m, 2, nBits=NBITS).GetNonzeroElements()
        x += [fp.get(i, 0) for i in range(NBITS)]
        s = Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(m))
        scaf.setdefault(s, []).append(len(rows))
        rows.append([name] + ["%.6g" % v for v in x] + ["%.3f" % act[name]])
labs = ["lab-a", "lab-b", "lab-c", "lab-new"]
member = {l: [] for l in labs}
for i, (s, idx) in enumerate(sorted(scaf.items(), key=lambda kv: (-len(kv[1]), kv[0]))):
    member[labs[i % 4]] += idx
header = ["id"] + desc + ["fp%d" % i for i in range(NBITS)] + ["pic50"]
for l in labs:
    with open(os.path.join(out, l + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in sorted(member[l]):
            w.writerow(rows[i])
PY
