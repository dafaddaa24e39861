#!/usr/bin/env bash
# Installs llama.cpp (llama-cpp-python) into the virtualenv from a wheel built for any x86-64 CPU.
#
#   scripts/install_engine.sh .venv/bin/python
#
# LLAMA_BUILD=portable (default): no -march=native; AVX2/FMA/F16C kernels, no AVX-512, no AMX,
#   so the same wheel runs on every x86-64 CPU from 2013 on (Intel Haswell, AMD Zen and later),
#   including the AMX CPUs (Sapphire Rapids and later) whose native AMX kernels segfault.
# LLAMA_BUILD=native: -march=native for this CPU only (a little faster on AVX-512 machines; the
#   engine's one-token self-check reports a build that faults on this CPU).
# LLAMA_CMAKE_ARGS: extra CMake arguments, appended.
# The wheel is built once per (version, build, flags[, CPU for native]) and kept in
# AUTOGLM_WHEEL_CACHE (default ~/.cache/autoglm/wheels); pip's own wheel cache is not used: it
# keys a wheel by the sdist alone, so it would hand back a wheel built with other flags.
# ENGINE_REBUILD=1 ignores the kept wheel. Compiling takes 6 to 11 minutes on 2 cores.
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=0.3.36
BUILD=${LLAMA_BUILD:-portable}
case "$BUILD" in
  portable)
    ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    ARGS="$ARGS -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    CPU_KEY=any ;;
  native)
    ARGS="-DGGML_NATIVE=ON"
    CPU_KEY=$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12) ;;
  *) echo "LLAMA_BUILD must be portable or native, not '$BUILD'" >&2; exit 2 ;;
esac
ARGS="$ARGS ${LLAMA_CMAKE_ARGS:-}"
PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
KEY=$(printf '%s|%s|%s|%s' "$VERSION" "$ARGS" "$CPU_KEY" "$PYTAG" | sha256sum | cut -c1-16)
VENV_DIR=$(dirname "$(dirname "$PY")")
MARKER="$VENV_DIR/.engine-build"
if [ "${ENGINE_REBUILD:-0}" != 1 ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$KEY" ] \
   && "$PY" -c 'import llama_cpp' 2>/dev/null; then
  echo "engine: llama-cpp-python $VERSION ($BUILD build) already installed"
  exit 0
fi
CACHE_ROOT=${AUTOGLM_WHEEL_CACHE:-$HOME/.cache/autoglm/wheels}
CACHE="$CACHE_ROOT/llama-cpp-python-$VERSION-$BUILD-$KEY"
WHEEL=$(ls "$CACHE"/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)
if [ "${ENGINE_REBUILD:-0}" = 1 ] || [ -z "$WHEEL" ]; then
  echo "engine: compiling llama-cpp-python $VERSION ($BUILD build: $ARGS); 6 to 11 minutes on 2 cores"
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$PY" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$TMP" "llama-cpp-python==$VERSION"
  mkdir -p "$CACHE"
  rm -f "$CACHE"/*.whl
  mv "$TMP"/llama_cpp_python-*.whl "$CACHE"/
  WHEEL=$(ls "$CACHE"/llama_cpp_python-*.whl | head -1)
fi
"$PY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
# Its run-time dependencies (numpy, jinja2, diskcache, typing-extensions) from the index.
"$PY" -m pip install --quiet "llama-cpp-python==$VERSION"
echo "$KEY" > "$MARKER"
echo "engine: installed $(basename "$WHEEL") ($BUILD build)"
