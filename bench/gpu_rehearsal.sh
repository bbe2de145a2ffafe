#!/usr/bin/env bash
# Ready for the first GPU: run this on a machine with one CUDA GPU (about 10 minutes) to check the whole CUDA path
# that CPU CI cannot: bf16 against fp32 logits on the same weights (tolerance in bench/gpu_checks.py), training
# steps with torch.compile off and on, achieved matmul TFLOP/s against the GPU's own bf16 GEMM peak, and a dress
# rehearsal of sudoku-extreme-mlp through the retrain flow on Ray with the GPU (real data, full-size model).
# Writes <out>/checks.json, <out>/rehearsal.json and the merged <out>/summary.json. Without a GPU it exits 0 at once.
#
#   bash bench/gpu_rehearsal.sh [out folder, default runs/gpu-rehearsal]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${1:-runs/gpu-rehearsal}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_rehearsal: no CUDA GPU is visible to torch on this machine; nothing to check."
  exit 0
fi
mkdir -p "$OUT"
"$PY" -c 'import torch; print("gpu_rehearsal:", torch.cuda.get_device_name(0), "torch", torch.__version__)'

status=0
"$PY" bench/gpu_checks.py --out "$OUT/checks.json" || status=$?

"$PY" -m pipelines.retrain --preset sudoku-extreme-mlp --rehearse --workers 1 --store "$OUT/store" \
  2>&1 | tee "$OUT/rehearsal.log"
report="$(grep '^Report:' "$OUT/rehearsal.log" | awk '{print $NF}')"
cp "$report" "$OUT/rehearsal.json"

"$PY" - "$OUT" "$status" <<'PY'
import json, sys
from pathlib import Path
out, status = Path(sys.argv[1]), int(sys.argv[2])
checks = json.loads((out / "checks.json").read_text()) if (out / "checks.json").is_file() else {}
rehearsal = json.loads((out / "rehearsal.json").read_text())
summary = {"checks": checks, "rehearsal": {k: rehearsal[k] for k in ("stages", "projection", "metrics", "model")},
           "parity_ok": bool(checks.get("parity", {}).get("ok")), "checks_exit_status": status}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
exit "$status"
