#!/usr/bin/env bash
# The GPU check of `dbtools calibrate` (issue 4), as one prepared script for a lent device machine:
#   0. host-device syncs per training step (benchmarks/step_syncs.py; a sync a step stalls the GPU);
#   g. captured CUDA graphs against launches one by one (benchmarks/graph_check.py);
#   1. a quick calibration of two ENCODE sets on the CPU and on DEVICE, and how far they differ;
#   2. benchmarks/calibrate.py on DEVICE at the original's step budget (extrapolated wall times
#      for 1 and 5 proteins, and the speed-up over one model at a time), with a profile of 20
#      steps of one batched run (which operators take the time);
#   3. the real 5-protein run of protocol (b) at that budget, timed, stopped after REAL_LIMIT
#      seconds (the issue's target is 300 s on one H100); its progress log shows how far it got.
# A step that fails is reported and the next one runs, so one call of the lease gives all it can.
# STAGES picks the steps (default "0 g 1 2 3"), e.g. STAGES="g 3" for the graph check and the real run.
#
#   bash benchmarks/device_calibrate.sh [DEVICE]        # DEVICE: cuda (default) or cpu
#
# The ENCODE sets come from $ENCODE (default ../shared/data/encode). ../shared does not travel to
# the device machine, so copy them into an ignored folder of the checkout and carry it:
#   mkdir -p .devdata && cp -r ../shared/data/encode .devdata/ && echo /.devdata/ >> .git/info/exclude
#   run: ENCODE=.devdata/encode bash benchmarks/device_calibrate.sh   (carry: [".devdata"])
# Logs go to $OUT (the device tool's folder, whose files come back) or /tmp/device_calibrate; the
# calibrations and banks to $WORK (default /tmp/device_calibrate: too many files to bring back).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cuda}
ENCODE=${ENCODE:-../shared/data/encode}
OUT=${OUT:-/tmp/device_calibrate}
WORK=${WORK:-/tmp/device_calibrate}
STEPS=${STEPS:-20000}
EVERY=${EVERY:-4000}
REAL_LIMIT=${REAL_LIMIT:-330}
SAMPLE=${SAMPLE:-200}
PY=${PYTHON:-python3}
STAGES=" ${STAGES:-0 g 1 2 3} "
# the shipped models' package (models/, installed as dbtools_models) without installing dbtools
shim=$(mktemp -d) && ln -s "$PWD/models" "$shim/dbtools_models" && export PYTHONPATH="$shim:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
"$PY" -c "import torch; print('torch', torch.__version__, '| device', '$DEVICE',
      torch.cuda.get_device_name() if '$DEVICE' == 'cuda' else '')"
nproc
[[ "$DEVICE" == cuda ]] && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv

if [[ "$STAGES" == *" 0 "* ]]; then
echo "== 0. host-device syncs per training step"
"$PY" benchmarks/step_syncs.py | tee "$OUT/syncs.txt" || echo "some line syncs every step (see above)"
fi

if [[ "$STAGES" == *" g "* ]]; then
echo "== g. CUDA graphs against launches one by one"
"$PY" benchmarks/graph_check.py --device "$DEVICE" ${GRAPH_ARGS:-} | tee "$OUT/graphs.txt"
fi

if [[ "$STAGES" == *" 1 "* ]]; then
echo "== 1. quick calibration (2 sets, 3 trials x 2 folds + 2 final, 200 steps): cpu against $DEVICE"
quick=(--protocol a --sets ARID3A,CTCFL --trials 3 --folds 2 --final-trials 2 --max-steps 200
       --checkpoint-every 50 --encode "$ENCODE")
"$PY" benchmarks/calibrate_encode.py "${quick[@]}" --device cpu --save "$WORK/quick_cpu" | tee "$OUT/quick_cpu.txt"
"$PY" benchmarks/calibrate_encode.py "${quick[@]}" --device "$DEVICE" --save "$WORK/quick_dev" | tee "$OUT/quick_dev.txt"
"$PY" - "$WORK/quick_cpu/calibration_a.json" "$WORK/quick_dev/calibration_a.json" <<'EOF'
import json, sys
import numpy as np
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = [pa["choice"]["trial"] == pb["choice"]["trial"] and pa["choice"]["step"] == pb["choice"]["step"]
        for pa, pb in zip(a["proteins"], b["proteins"])]
def losses(doc):
    return np.array([f["val_loss"] for p in doc["proteins"] for t in p["trials"] for f in t["folds"]], float)
d = np.abs(losses(a) - losses(b))
print(f"same choice (trial and step) for {sum(same)} of {len(same)} sets; "
      f"validation losses differ by at most {d.max():.2e} (median {np.median(d):.2e})")
EOF
fi

if [[ "$STAGES" == *" 2 "* ]]; then
echo "== 2. benchmarks/calibrate.py on $DEVICE, $STEPS steps, a validation every $EVERY"
"$PY" benchmarks/calibrate.py --device "$DEVICE" --max-steps "$STEPS" --checkpoint-every "$EVERY" \
    --sample-steps "$SAMPLE" --serial-sample 3 --profile 20 --encode "$ENCODE" | tee "$OUT/speed.txt"

fi

if [[ "$STAGES" == *" 3 "* ]]; then
predicted=$(awk '/^5 protein/ {print int($6)}' "$OUT/speed.txt" 2>/dev/null)
echo "== 3. protocol (b), 5 sets in one run, $STEPS steps: predicted ${predicted:-?} s; stopped after $REAL_LIMIT s"
start=$(date +%s)
timeout "$REAL_LIMIT" "$PY" benchmarks/calibrate_encode.py --protocol b --device "$DEVICE" --max-steps "$STEPS" \
    --checkpoint-every "$EVERY" --encode "$ENCODE" --save "$WORK/b" --progress-every 10 2>&1 | tee "$OUT/b.txt"
echo "step 3: exit ${PIPESTATUS[0]} (124: stopped at the limit) after $(( $(date +%s) - start )) s"
fi
