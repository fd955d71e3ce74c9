#!/usr/bin/env bash
# `make run`: the API in the foreground and an indexer beside it, on the local stack.
# Stopping the API (Ctrl-C) stops the indexer too.
set -euo pipefail
POETRY=${POETRY:-poetry}
PORT=${PORT:-8000}

# shellcheck disable=SC2086  # POETRY may be a command with arguments
$POETRY run myaiserv indexer run &
indexer=$!
trap 'kill -TERM $indexer 2>/dev/null || true; wait $indexer 2>/dev/null || true' EXIT INT TERM

echo "run: API on http://127.0.0.1:$PORT (OpenAPI at /schema); indexer pid $indexer"
echo "run: create a tenant and its first API key with: $POETRY run myaiserv tenants create NAME"
# shellcheck disable=SC2086
$POETRY run myaiserv serve --host 127.0.0.1 --port "$PORT"
