#!/usr/bin/env bash
# Run every bench script in turn and list all their RESULT lines at the end.
# Arguments go to each script: bench/run_all.sh (CPU size), --full (GPU box), --tiny (smoke test).
# PYTHON selects the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

for script in bench_pipeline bench_recipe bench_arrays bench_backends; do
    echo "########## bench/$script.py $*"
    start=$SECONDS
    "$py" "bench/$script.py" "$@" 2>&1 | tee -a "$log"
    echo "########## bench/$script.py took $((SECONDS - start)) s"
    echo
done

echo "########## all RESULT lines"
grep '^RESULT ' "$log"
