#!/usr/bin/env bash
# The Tortoise GPU check in one call, for a short lease on one GPU (H100/H200: under 6 minutes):
#   1. benchmarks/gpu_checks.py: stock equivalence, batch invariance (fp32 and fp16), an engine render
#   2. benchmarks/bench_tortoise.py --size full: stock vs per-chunk vs batched at our draft (16 chunks)
#      then standard (8 chunks) settings, random weights, the same chunks and settings on every side,
#      plus the batched engine at the table's DDIM diffusion
# and writes ONE JSON file: $OUT/gpu_check.json when OUT is set, else output/bench/gpu_check.json.
#
#   benchmarks/gpu_check.sh                          # on the GPU machine
#   benchmarks/gpu_check.sh --device cpu --size tiny # the same steps on a CPU, in a few minutes
#
# Wheels: the GPU machine has torch, torchaudio and transformers 5.x but no network and no tortoise. The
# script installs every wheel in .whl/ (git-excluded, carried with the checkout) into a temp folder at the
# front of PYTHONPATH; README "Tortoise on GPUs" says how to fill .whl/ with `pip download`. Without a
# .whl/ folder it uses the Python it is given ($PYTHON, default python3) as it is.
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
PY=${PYTHON:-python3}
OUTDIR=${OUT:-$REPO/output/bench}
mkdir -p "$OUTDIR"
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
export TMPDIR=$WORK HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 DO_NOT_TRACK=1
STARTED=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - STARTED ))s] $*" | tee -a "$OUTDIR/gpu_check.log"; }
: > "$OUTDIR/gpu_check.log"

export PYTHONPATH=$REPO
if compgen -G "$REPO/.whl/*.whl" > /dev/null; then
  log "installing $(ls "$REPO"/.whl/*.whl | wc -l) wheels from .whl/"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$REPO"/.whl/*.whl >> "$OUTDIR/gpu_check.log" 2>&1 || { log "wheel install failed"; exit 1; }
  export PYTHONPATH=$WORK/site:$REPO
fi
"$PY" -c 'import torch, transformers, tortoise; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tee -a "$OUTDIR/gpu_check.log"

# Step budgets (seconds) that sum to under 6 minutes on an H200; a step that runs out is recorded as such.
if [ "$SIZE" = full ]; then
  CHECK_T=60; DRAFT=(--chunks 16 --tokens 80); STANDARD=(--chunks 8 --tokens 80); DRAFT_T=170; STANDARD_T=100
else
  CHECK_T=300; DRAFT=(--chunks 4 --tokens 12 --samples 2 --steps 2); STANDARD=(--chunks 2 --tokens 12 --samples 4 --steps 2 --no-table)
  DRAFT_T=400; STANDARD_T=400
fi
status=0
log "checks"
timeout "$CHECK_T" "$PY" benchmarks/gpu_checks.py --device "$DEVICE" --size "$SIZE" --out "$WORK/checks.json" \
  >> "$OUTDIR/gpu_check.log" 2>&1 || { log "checks: exit $?"; status=1; }
log "bench draft"
timeout "$DRAFT_T" "$PY" benchmarks/bench_tortoise.py --size "$SIZE" --device "$DEVICE" --quality draft \
  "${DRAFT[@]}" --models-dir "$WORK/models" --out "$WORK/draft.json" >> "$OUTDIR/gpu_check.log" 2>&1 \
  || { log "bench draft: exit $?"; status=1; }
log "bench standard"
timeout "$STANDARD_T" "$PY" benchmarks/bench_tortoise.py --size "$SIZE" --device "$DEVICE" --quality standard \
  "${STANDARD[@]}" --models-dir "$WORK/models" --out "$WORK/standard.json" >> "$OUTDIR/gpu_check.log" 2>&1 \
  || { log "bench standard: exit $?"; status=1; }

"$PY" - "$WORK" "$OUTDIR/gpu_check.json" "$DEVICE" "$SIZE" "$(( $(date +%s) - STARTED ))" "$status" <<'EOF'
import json, os, sys, tempfile
work, out, device, size, wall, status = sys.argv[1:]
doc = {"device": device, "size": size, "wall_s": int(wall), "ok": status == "0"}
for name in ("checks", "draft", "standard"):
    path = os.path.join(work, name + ".json")
    doc[name] = json.load(open(path)) if os.path.exists(path) else None
for name in ("draft", "standard"):
    if doc[name]:
        doc[f"{name}_ratios"] = {k: v for k, v in doc[name].items() if k.startswith("speedup")}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".tmp")
with os.fdopen(fd, "w") as f:
    json.dump(doc, f, indent=2)
os.replace(tmp, out)
print(json.dumps({k: doc[k] for k in doc if k.endswith("_ratios") or k in ("ok", "wall_s")}, indent=2))
EOF
log "wrote $OUTDIR/gpu_check.json"
rm -rf "$WORK"
exit $status
