#!/usr/bin/env bash
# The demo of dbtools on the small real data set in demo/ (see demo/README.md).
set -euo pipefail
cd "$(dirname "$0")"
out=${DEMO_OUT:-demo_out}
mkdir -p "$out"

echo "== the models: CTCF and GABPA in the shipped bank of 927 published DeepBind models" >&2
dbtools models -m CTCF -m GABPA --tsv | cut -f1-6 >&2

echo "== score 34 GM12878 CTCF ChIP-seq peaks (chr20) with every CTCF model" >&2
dbtools score ctcf_peaks.fa -m CTCF --echo > "$out/ctcf_peaks.tsv"
head -5 "$out/ctcf_peaks.tsv" | cut -f1-4 >&2

echo "== GABPA test set (500 ENCODE peaks + 500 shuffled): the published model separates them" >&2
dbtools score gabpa_test.seq -m D00409.004 --no-head > "$out/gabpa_scores.txt"
paste gabpa_test.labels "$out/gabpa_scores.txt" | awk '
  { s[$1] += $2; n[$1]++ }
  END { printf "mean score of bound peaks %.3f, of shuffled negatives %.3f\n", s[1]/n[1], s[0]/n[0] }' >&2

echo "== train a GABPA model on fold A (500 peaks + shuffles), evaluate it and the published one on B" >&2
dbtools train gabpa_A.seq --seed 1 --steps 500 -o "$out/gabpa.bank"
dbtools evaluate gabpa_B.seq --bank "$out/gabpa.bank" | cut -f1,4-7 >&2
dbtools evaluate gabpa_B.seq -m D00409.004 | cut -f1,4-7 | tail -1 >&2

echo "== outputs in $(cd "$out" && pwd)" >&2
