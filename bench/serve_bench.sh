#!/usr/bin/env bash
# Serve AutoGLM for bench/ws_chat.py with the production-shaped set-up on loopback: the packaged
# PostgreSQL (its own database), Redis (its own database number), the fake backend at a set
# token rate, DEBUG off.
#
#   bench/serve_bench.sh                  # Daphne in the foreground on 127.0.0.1:8765 (Ctrl-C stops)
#   bench/serve_bench.sh --with CMD ARGS  # a fresh server for one command: start, wait, run, stop
#   BENCH_PORT=9000 LLM_FAKE_TOKEN_MS=10 bench/serve_bench.sh
#   BENCH_PROCESSES=2 bench/serve_bench.sh --with CMD  # 2 Daphne processes on one port (SO_REUSEPORT)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BENCH_HOST=${BENCH_HOST:-127.0.0.1}
BENCH_PORT=${BENCH_PORT:-8765}
BENCH_DB=${BENCH_DB:-autoglm_bench}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
DATA_DIR=$(cd "${AUTOGLM_DATA_DIR:-.data}" 2>/dev/null && pwd || echo "$PWD/.data")

# The benchmark's database inside the packaged server: created and migrated (this also starts
# the packaged PostgreSQL when it is not running).
env -u DATABASE_URL -u REDIS_URL AUTOGLM_EMBEDDED_DB_NAME="$BENCH_DB" \
  "$PY" manage.py migrate --noinput >/dev/null

# Retrieval is part of what is measured: the demo knowledge base (real articles in several
# languages) is imported, and indexed, once (kb_import skips unchanged articles).
# BENCH_KB=none leaves the knowledge base empty.
if [ "${BENCH_KB:-demo}" = "demo" ]; then
  env -u DATABASE_URL -u REDIS_URL AUTOGLM_EMBEDDED_DB_NAME="$BENCH_DB" \
    "$PY" manage.py kb_import knowledge/fixtures/demo_articles.jsonl >/dev/null
fi

# Redis is needed (channel layer, live text, rate-limit cache); its benchmark database starts
# empty so no stale channel messages or counters from an earlier run remain.
"$PY" - "$BENCH_REDIS_URL" <<'PYEOF'
import sys

import redis

try:
    redis.Redis.from_url(sys.argv[1]).flushdb()
except redis.RedisError as exc:
    sys.exit(f"Redis is needed at {sys.argv[1]}: {exc} (make redis starts one)")
PYEOF

export DATABASE_URL="postgresql://postgres@/${BENCH_DB}?host=${DATA_DIR}/pg"
export REDIS_URL="$BENCH_REDIS_URL"
export SECRET_KEY=${SECRET_KEY:-bench-only-secret-key-not-for-production-0123456789}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-127.0.0.1,localhost}
export DEBUG=false
export LLM_BACKEND=chat.llm.fake.FakeBackend
export CHAT_NO_KNOWLEDGE_REPLY=model  # the bench measures streaming, not grounding
export CHAT_REPLY_LANGUAGE_CHECK=false  # the fake answers every language in English
export LLM_FAKE_FIRST_TOKEN_MS=${LLM_FAKE_FIRST_TOKEN_MS:-40}
export LLM_FAKE_TOKEN_MS=${LLM_FAKE_TOKEN_MS:-20}
eval "$("$PY" bench/limits.py)"  # one address, many visitors: limits lifted
export DATABASE_CONN_MAX_AGE=${DATABASE_CONN_MAX_AGE:-60}
export LOG_LEVEL=${LOG_LEVEL:-WARNING}

echo "bench server: http://${BENCH_HOST}:${BENCH_PORT}/ db=${BENCH_DB} redis=${REDIS_URL}" \
  "first_token=${LLM_FAKE_FIRST_TOKEN_MS}ms token=${LLM_FAKE_TOKEN_MS}ms" \
  "conn_max_age=${DATABASE_CONN_MAX_AGE}" >&2
BENCH_PROCESSES=${BENCH_PROCESSES:-1}
if [ "$BENCH_PROCESSES" -gt 1 ]; then
  serve=("$PY" scripts/serve.py --processes "$BENCH_PROCESSES" --host "$BENCH_HOST" --port "$BENCH_PORT"
         --pid-file "${DATA_DIR}/bench-serve.json")
else
  serve=("$PY" -m autoglm_site.daphne_server -b "$BENCH_HOST" -p "$BENCH_PORT" autoglm_site.asgi:application)
fi
if [ "${1:-}" != "--with" ]; then
  exec "${serve[@]}"
fi
shift
log=${BENCH_SERVER_LOG:-${DATA_DIR}/bench-server.log}
"${serve[@]}" >"$log" 2>&1 &
server=$!
stop_server() {
  kill "$server" 2>/dev/null || return 0
  for _ in $(seq 40); do kill -0 "$server" 2>/dev/null || return 0; sleep 0.25; done
  echo "bench server did not stop in 10 s: killing it" >&2
  kill -9 "$server" 2>/dev/null || true
}
trap stop_server EXIT INT TERM
for _ in $(seq 120); do
  kill -0 "$server" 2>/dev/null || { echo "bench server exited; see $log" >&2; exit 1; }
  "$PY" -c "import urllib.request as u; u.urlopen('http://${BENCH_HOST}:${BENCH_PORT}/healthz', timeout=2)" \
    2>/dev/null && break
  sleep 0.5
done
status=0
"$@" || status=$?
echo "bench server log: $log ($(grep -c ' ERROR ' "$log" || true) ERROR lines)" >&2
exit "$status"
