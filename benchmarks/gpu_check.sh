#!/usr/bin/env bash
# The Tortoise GPU check in one call, for a short lease on one GPU:
#   0. the environment: GPU name and memory, torch/CUDA versions (the first line says what is missing)
#   1. benchmarks/gpu_checks.py: stock equivalence, batch invariance (fp32 and fp16), an engine render
#   2. benchmarks/bench_tortoise.py --size full at our draft settings (16 chunks), then standard (8
#      chunks): batched, per-chunk, stock, then the batched engine at the table's DDIM diffusion; random
#      weights, the same chunks and settings on every side
# into ONE JSON file, $OUT/gpu_check.json when OUT is set, else output/bench/gpu_check.json, rewritten
# (temp file + rename) as each check, side and level ends: a step cut off by its budget keeps what it
# finished. Its "summary" holds, per level, each side's real-time factor, seconds per stage, AR rows per
# decode, peak GPU memory and diffusion share, the ratios, and the fp16 batch-invariance counts.
#
#   benchmarks/gpu_check.sh                          # on the GPU machine
#   benchmarks/gpu_check.sh --device cpu --size tiny # the same steps on a CPU, in a few minutes
#
# Budgets (seconds per step, from the environment): GPU_CHECK_CHECKS_S, GPU_CHECK_DRAFT_S,
# GPU_CHECK_STANDARD_S; defaults sum to under 6 minutes on an H100/H200 (full) and are generous elsewhere.
# Python: $PYTHON, else python3 (the GPU machine's), else the checkout's .venv/bin/python when python3
# has no torch. Wheels: the GPU machine has torch, torchaudio and transformers 5.x but no network and no
# tortoise. The script installs every wheel in .whl/ (git-excluded, carried with the checkout) into a temp
# folder at the front of PYTHONPATH; README "Tortoise on GPUs" says how to fill .whl/ with `pip download`.
set -u -o pipefail
DEVICE=cuda
SIZE=full
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    *) echo "usage: $0 [--device cuda|cpu] [--size full|small|tiny]" >&2; exit 2 ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUTDIR=${OUT:-$REPO/output/bench}
mkdir -p "$OUTDIR"
JSON=$OUTDIR/gpu_check.json
LOG=$OUTDIR/gpu_check.log
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 DO_NOT_TRACK=1
export PYTHONPATH=$REPO
STARTED=$(date +%s)
: > "$LOG"
rm -f "$JSON"
log() { echo "[gpu_check $(( $(date +%s) - STARTED ))s] $*" | tee -a "$LOG"; }
record() { "$PY" benchmarks/check_record.py "$@" --out "$JSON" >> "$LOG" 2>&1; }

PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && ! python3 -c 'import torch' 2>/dev/null && [ -x "$REPO/.venv/bin/python" ] \
    && "$REPO/.venv/bin/python" -c 'import torch' 2>/dev/null; then
  PY=$REPO/.venv/bin/python
fi
if ! command -v "$PY" > /dev/null; then
  echo "gpu_check: no Python at '$PY': set PYTHON=/path/to/python (one with torch)" | tee -a "$LOG"
  exit 3
fi
# The first line says what this machine is, or what is missing (exit 3: no torch, 4: no CUDA).
"$PY" benchmarks/check_record.py env --device "$DEVICE" --out "$JSON" 2>&1 | tee -a "$LOG"
code=${PIPESTATUS[0]}
[ "$code" = 0 ] || exit "$code"

if compgen -G "$REPO/.whl/*.whl" > /dev/null; then
  log "installing $(ls "$REPO"/.whl/*.whl | wc -l) wheels from .whl/"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$REPO"/.whl/*.whl >> "$LOG" 2>&1 || { log "wheel install failed"; record step wheels "failed"; exit 1; }
  export PYTHONPATH=$WORK/site:$REPO
fi
if ! "$PY" -c 'import transformers, tortoise' >> "$LOG" 2>&1; then
  log "tortoise or transformers cannot be imported by $PY (see $LOG): fill .whl/ as README 'Tortoise on GPUs' says"
  record step imports "failed"
  exit 1
fi
"$PY" - "$JSON" <<'EOF' >> "$LOG" 2>&1
import sys
from importlib import metadata
sys.path.insert(0, "benchmarks")
from check_record import merge
merge(__import__("pathlib").Path(sys.argv[1]), ["environment", "packages"],
      {p: metadata.version(p) for p in ("transformers", "tokenizers", "huggingface-hub", "tortoise-tts")})
EOF

if [ "$SIZE" = full ]; then
  DRAFT=(--chunks 16 --tokens 80); STANDARD=(--chunks 8 --tokens 80)
  CHECK_T=${GPU_CHECK_CHECKS_S:-60}; DRAFT_T=${GPU_CHECK_DRAFT_S:-170}; STANDARD_T=${GPU_CHECK_STANDARD_S:-100}
else
  DRAFT=(--chunks 4 --tokens 12 --samples 2 --steps 2); STANDARD=(--chunks 2 --tokens 12 --samples 4 --steps 2 --no-table)
  CHECK_T=${GPU_CHECK_CHECKS_S:-400}; DRAFT_T=${GPU_CHECK_DRAFT_S:-400}; STANDARD_T=${GPU_CHECK_STANDARD_S:-400}
fi
"$PY" - "$JSON" "$DEVICE" "$SIZE" "$CHECK_T" "$DRAFT_T" "$STANDARD_T" <<'EOF' >> "$LOG" 2>&1
import sys
sys.path.insert(0, "benchmarks")
from pathlib import Path
from check_record import merge
out, device, size, *budgets = sys.argv[1:]
merge(Path(out), ["run"], {"device": device, "size": size,
                           "budgets_s": dict(zip(("checks", "draft", "standard"), map(int, budgets)))})
EOF

status=0
# step NAME BUDGET COMMAND...: run it under its budget and record how it ended.
step() {
  local name=$1 budget=$2 t0 rc verdict
  shift 2
  log "$name (budget ${budget} s)"
  record step "$name" running
  t0=$(date +%s)
  timeout -k 15 "$budget" "$@" >> "$LOG" 2>&1
  rc=$?
  case $rc in
    0) verdict=ok ;;
    124|137) verdict="timed out after $budget s (finished parts kept)" ;;
    *) verdict="exit $rc" ;;
  esac
  [ $rc = 0 ] || status=1
  record step "$name" "$verdict" "$(( $(date +%s) - t0 ))"
  log "$name: $verdict"
}
step checks "$CHECK_T" "$PY" benchmarks/gpu_checks.py --device "$DEVICE" --size "$SIZE" --into "$JSON"
step draft "$DRAFT_T" "$PY" benchmarks/bench_tortoise.py --size "$SIZE" --device "$DEVICE" --quality draft \
  "${DRAFT[@]}" --models-dir "$WORK/models" --out "$WORK/draft.json" --into "$JSON" --key draft
step standard "$STANDARD_T" "$PY" benchmarks/bench_tortoise.py --size "$SIZE" --device "$DEVICE" --quality standard \
  "${STANDARD[@]}" --models-dir "$WORK/models" --out "$WORK/standard.json" --into "$JSON" --key standard

"$PY" - "$JSON" "$(( $(date +%s) - STARTED ))" "$status" <<'EOF' >> "$LOG" 2>&1
import sys
sys.path.insert(0, "benchmarks")
from pathlib import Path
from check_record import merge
merge(Path(sys.argv[1]), ["run", "wall_s"], int(sys.argv[2]))
merge(Path(sys.argv[1]), ["ok"], sys.argv[3] == "0")
EOF
"$PY" benchmarks/check_record.py summary --out "$JSON" | tee -a "$LOG"
log "wrote $JSON"
exit $status
