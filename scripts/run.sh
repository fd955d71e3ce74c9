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

# The console's links (one-time password links) point at this server unless told otherwise.
export MYAISERV_CONSOLE__PUBLIC_URL="${MYAISERV_CONSOLE__PUBLIC_URL:-http://127.0.0.1:$PORT}"
CONSOLE="$MYAISERV_CONSOLE__PUBLIC_URL/console/"
FIRST_TENANT="${MYAISERV_FIRST_TENANT:-default}"
# Locally, the first tenant's admins also manage the provider secrets (every tenant's).
export MYAISERV_CONSOLE__OPERATOR_TENANTS="${MYAISERV_CONSOLE__OPERATOR_TENANTS:-$FIRST_TENANT}"

echo "run: API on http://127.0.0.1:$PORT (OpenAPI at /schema); indexer pid $indexer"
echo "run: console on $CONSOLE"
# `stack up` wrote where traces go (the stack's Zipkin); its UI lists them.
ui_url=$(grep -s '^MYAISERV_TRACING__UI_URL=' .env | tail -1 || true)
if [ -n "$ui_url" ]; then
  ui_url=${ui_url#*=}
  echo "run: traces on ${ui_url%/traces/\{trace_id\}}/"
fi
# A fresh installation gets its first tenant and admin (the link to set the password is
# printed once); later runs only say how to log in.
# shellcheck disable=SC2086
$POETRY run myaiserv users first-admin --console-url "$CONSOLE" \
  --tenant "$FIRST_TENANT" --email "${MYAISERV_FIRST_ADMIN:-admin@example.com}"
echo "run: more tenants and keys: $POETRY run myaiserv tenants create NAME; users: $POETRY run myaiserv users create"
# shellcheck disable=SC2086
$POETRY run myaiserv serve --host 127.0.0.1 --port "$PORT"
