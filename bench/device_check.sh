#!/usr/bin/env bash
# The GPU figures of the time-to-accuracy benchmark, in one call of a lent GPU machine.
#
# Here, once:   python bench/carry_qm9.py pack .gpu/qm9.npz
#               pip download --no-deps --only-binary=:all: -d .gpu ase==3.29.0
# There:        OUT=DIR bash bench/device_check.sh        (carry .gpu)
#
# 1. smoke: the study's default recipe on 2,000 molecules for one epoch, then `evaluate`
#    (fails fast when a code path breaks on the device);
# 2. the study's own default training (preset seed-default: all of QM9, 38 features, batch 512)
#    for SEED_EPOCHS epochs: its seconds per epoch;
# 3. bench/time_to_accuracy.py, molstrata only, on all of QM9 for BUDGET minutes of training with
#    the GPU recipe below (config (a) of PEERS.md: 128 features, 6 interactions; batch 100,
#    Adam 5e-4 with 2 % warm-up and cosine decay to the end of the budget, EMA 0.995, L1 loss).
# Figures land in OUT: log.txt, seed_default_{curve.csv,run.json}, t2a_{curves.csv,
# summary.json,curves.png}. Environment: DEVICE (cuda), BUDGET (6), SEED_EPOCHS (2),
# THREADS (8), MAX_MOLECULES (all; for a dry run on a CPU), PYTHON (python3), SMOKE (1; 0 skips
# stage 1), T2A_SET (more --set options for stage 3, e.g. "runtime.compile=true").
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/device-check}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-6}
SEED_EPOCHS=${SEED_EPOCHS:-2}
THREADS=${THREADS:-8}
MAX_MOLECULES=${MAX_MOLECULES:-}
PY=${PYTHON:-python3}
WORK=/tmp/molstrata-device
SITE=$WORK/site
export MOLSTRATA_CACHE_DIR=$WORK/cache
mkdir -p "$OUT" "$WORK"
LIMIT=()
[ -n "$MAX_MOLECULES" ] && LIMIT=(--max-molecules "$MAX_MOLECULES")

stage() {  # stage NAME COMMAND...: run it, log it without progress bars, say its time
    local name=$1 start rc
    shift
    echo "== $name: $*" | tee -a "$OUT/log.txt"
    start=$(date +%s)
    "$@" 2>&1 | tr '\r' '\n' | grep --line-buffered -v -E '%\||^\s*$' | tee -a "$OUT/log.txt"
    rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
    return "$rc"
}

if compgen -G ".gpu/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .gpu/*.whl || exit 1
fi
export PYTHONPATH=$SITE:$PWD
stage setup $PY bench/carry_qm9.py unpack .gpu/qm9.npz --site "$SITE" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$OUT/log.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/log.txt"

SMOKE=${SMOKE:-1}
EXTRA=()
for option in ${T2A_SET:-}; do EXTRA+=(--set "$option"); done
[ "$SMOKE" = 1 ] && { stage smoke $PY -m molstrata train --preset seed-default --max-molecules 2000 --epochs 1 \
    --device "$DEVICE" -q -o "$WORK/smoke" || exit 1
stage smoke-evaluate $PY -m molstrata evaluate "$WORK/smoke" || exit 1; }

stage seed-default timeout 200 $PY -m molstrata train --preset seed-default \
    --epochs "$SEED_EPOCHS" --device "$DEVICE" --threads "$THREADS" -q "${LIMIT[@]}" \
    -o "$WORK/seed-default"
cp "$WORK/seed-default/learning_curve.csv" "$OUT/seed_default_curve.csv" 2>/dev/null
cp "$WORK/seed-default/run.json" "$OUT/seed_default_run.json" 2>/dev/null

stage time-to-accuracy timeout $(( ${BUDGET%.*} * 60 + 170 )) $PY bench/time_to_accuracy.py \
    --budget "$BUDGET" --no-pyg --threads "$THREADS" "${LIMIT[@]}" --out "$WORK/t2a" \
    --set runtime.device="$DEVICE" --set model.n_atom_basis=128 --set model.n_interactions=6 \
    --set training.batch_size=100 --set training.lr=5e-4 "${EXTRA[@]}"
for f in curves.csv summary.json curves.png; do cp "$WORK/t2a/$f" "$OUT/t2a_$f" 2>/dev/null; done
ls -la "$OUT"
