#!/usr/bin/env bash
# The GPU run in one command, for a fresh GPU box with no internet (under 16 minutes on an H200):
#   1. the GPU tests (pytest -m gpu) and the lesson notebooks at small size, on CUDA;
#   2. bench/bench_gpu.py: the recipe at course size (23,000 + 2,000 images at 224 px, one epoch from JPEGs),
#      VGG16's forward pass against the bf16 peak measured in the same run, decoding against the forward pass;
#   3. bench/bench_recipe.py --full with mixed precision and compilation, and bench/bench_backends.py
#      (torch against JAX, where JAX is installed);
#   4. bench/bench_compile.py --full --reduce-overhead: the recipe's head, the unfrozen VGG16 and the lesson
#      models (dot product, conv sentiment, char-rnn) trained eager, compiled and compiled with CUDA graphs
#      ("reduce-overhead"), against plain PyTorch, with compile seconds and break-even steps (for the
#      compile policy's CUDA row, dl1/backend/torch_impl.py BREAK_EVEN).
# Everything goes to one file: RESULT lines, nvidia-smi facts, the test summaries.
#
#   bench/gpu.sh [--out FILE] [--dry-run] [--wheels DIR] [--list-wheels]
#     --out FILE     where to write (default bench/gpu-results.txt, or $OUT/gpu-results.txt when OUT is set)
#     --dry-run      check the script, the tools and the Python packages it needs, run nothing heavy
#     --wheels DIR   install the wheels in DIR first (pip --no-index --target), for a box without a registry
#     --list-wheels  print the pip command that downloads those wheels (run it where pip reaches PyPI)
#
# The Python packages it needs beyond the box's PyTorch are read from the installed distributions' own
# metadata (bench/gpu_needs.py: dl1's requirements and its gpu-run extra, followed recursively); on a
# machine with pip access, bench/gpu.sh --list-wheels prints the pip command that downloads their wheels.
set -euo pipefail

cd "$(dirname "$0")/.."
out=""
dry_run=0
wheels=""
list_wheels=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --wheels) wheels="$2"; shift 2 ;;
    --list-wheels) list_wheels=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-python3}"

if [ "$list_wheels" = 1 ]; then
  exec "$PY" bench/gpu_needs.py wheels --python 3.12
fi

if [ -z "$out" ]; then
  if [ -n "${OUT:-}" ]; then out="$OUT/gpu-results.txt"; else out="bench/gpu-results.txt"; fi
fi

if [ -n "$wheels" ]; then
  [ -d "$wheels" ] || { echo "gpu.sh: --wheels $wheels is not a folder" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dl1-site \
    "$wheels"/*.whl
  export PYTHONPATH="/tmp/dl1-site:.${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND="${KERAS_BACKEND:-torch}" DL1_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "gpu.sh: $PY cannot import torch: install the box's CUDA build of PyTorch first" >&2
  exit 1
fi
rc=0
missing=$("$PY" bench/gpu_needs.py missing) || rc=$?
if [ "$rc" = 1 ]; then
  echo "gpu.sh: missing Python packages: $missing (carry their wheels: bench/gpu.sh --list-wheels)" >&2
  exit 1
elif [ "$rc" != 0 ]; then
  echo "gpu.sh: cannot tell which Python packages are missing (bench/gpu_needs.py exit $rc)" >&2
  exit 1
fi

if [ "$dry_run" = 1 ]; then
  bash -n "$0"
  "$PY" -m pytest -q -m gpu --collect-only tests/test_gpu.py >/dev/null
  for script in bench/bench_gpu.py bench/bench_recipe.py bench/bench_backends.py bench/bench_compile.py; do
    "$PY" "$script" --help >/dev/null
  done
  command -v nvidia-smi >/dev/null 2>&1 && gpu="yes" || gpu="no (the real run stops there)"
  echo "gpu.sh --dry-run: the script, its Python packages, the tests and the bench scripts are in order;" \
       "nvidia-smi: $gpu; the real run writes $out"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  echo "gpu.sh: no NVIDIA GPU here (nvidia-smi missing or failing): run it on the GPU box" >&2
  exit 1
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu.sh: PyTorch does not see the GPU (a CPU build of torch?): install a CUDA build" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
: > "$out"
log() { echo "$*" | tee -a "$out"; }
start=$(date +%s)
log "== bench/gpu.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv | tee -a "$out"
"$PY" -c "import torch, keras; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| keras', keras.__version__)" \
  | tee -a "$out"

step() {  # step NAME SECONDS COMMAND...: run, keep the tail in the results file, never stop the whole run
  local name="$1" limit="$2"
  shift 2
  log "== $name (at most ${limit}s)"
  local rc=0
  timeout "$limit" "$@" > "/tmp/gpu-$name.log" 2>&1 || rc=$?
  grep -E '^(RESULT|SKIP)|passed|failed|error' "/tmp/gpu-$name.log" | tee -a "$out" || true
  [ "$rc" = 0 ] || { log "$name: exit $rc (last lines below)"; tail -n 15 "/tmp/gpu-$name.log" | tee -a "$out"; }
}

step gpu-tests 120 "$PY" -m pytest -q -m gpu tests/test_gpu.py
step notebooks 150 "$PY" -m pytest -q -x tests/test_notebooks.py -k "not have_"
step bench-gpu 180 "$PY" bench/bench_gpu.py --out /tmp/dl1-bench-gpu
step recipe-full 90 "$PY" bench/bench_recipe.py --full --mixed-precision --jit --repeats 1 --no-profile \
  --epochs 2 --out /tmp/dl1-bench-recipe
step backends 60 "$PY" bench/bench_backends.py --full --mixed-precision --jit
step compile-recipe 240 "$PY" bench/bench_compile.py --full --reduce-overhead --no-warm --epochs 1 \
  --compile-timeout 90 --cases recipe_head,vgg16_unfrozen
step compile-lessons 240 "$PY" bench/bench_compile.py --full --reduce-overhead --no-warm --epochs 1 \
  --compile-timeout 60 --cases dot_model,conv_model,char_rnn
log "== done in $(( $(date +%s) - start ))s; results in $out"
