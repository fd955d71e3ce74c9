#!/bin/bash
# Proves the local Elasticsearch image as docker-compose runs it: builds it, makes the
# certificates with the setup one-shot, starts three secured nodes (docker-compose.yml's
# x-es-env plus TLS, ELASTIC_PASSWORD and the loopback transport relay, under this host's
# limits: nofile 20000, memlock 8 MiB), waits for green, lets the one-shot create the
# `myaiserv` user, uses the cluster as MyAIServ does with that user (template, index with
# a replica, alias, bulk, search, point in time, snapshot and restore) and checks what the
# user may not do, then stops a node (a data node, then es01), checks search still answers
# on a yellow cluster, restarts it and waits for green again. Everything it makes carries
# its prefix and is removed at the end.
#
#   docker/local/elasticsearch/selftest.sh            # SELFTEST_KEEP=1 leaves it running
#
# Environment: SELFTEST_PREFIX (esst), ES_IMAGE (localhost/myaiserv-elasticsearch:9.2.4),
# SKIP_BUILD=1, ES_ZIP (the integ-test zip; ~/.m2's by default), ES_HEAP (1g, as compose).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ES_VERSION=9.2.4
IMAGE="${ES_IMAGE:-localhost/myaiserv-elasticsearch:$ES_VERSION}"
P="${SELFTEST_PREFIX:-esst}"
ES_ZIP="${ES_ZIP:-$HOME/.m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip}"
NODES=(es01 es02 es03)
RELAY="es01:9301,es02:9302,es03:9303"
ELASTIC_PASSWORD="elastic-$RANDOM$RANDOM"
APP_PASSWORD="myaiserv-$RANDOM$RANDOM"
PREFIX=myaiserv
CERTS=/usr/share/elasticsearch/config/certs
# This machine's podman setup (see the project's notes); kept if the caller set its own.
if [[ -z "${CONTAINERS_CONF:-}" && -f /tmp/pc/containers.conf ]]; then
    export CONTAINERS_CONF=/tmp/pc/containers.conf CONTAINERS_STORAGE_CONF=/tmp/pc/storage.conf
fi

T0=$EPOCHREALTIME
step() { printf '\n== [%6.1fs] %s\n' "$(elapsed "$T0")" "$*"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if [[ -n "${SELFTEST_KEEP:-}" ]]; then
        echo "kept: containers $P-*, network $P-net, volumes $P-*"
        return
    fi
    if ((rc != 0)); then
        for c in "$P-setup" "${NODES[@]/#/$P-}"; do
            echo "--- last log lines of $c"
            podman logs --tail 25 "$c" 2>&1 || true
        done
    fi
    step "teardown"
    podman rm -f -t 5 "$P-setup" "${NODES[@]/#/$P-}" >/dev/null 2>&1 || true
    podman volume rm -f "$P-certs" "$P-snapshots" "$P-data01" "$P-data02" "$P-data03" >/dev/null 2>&1 || true
    podman network rm -f "$P-net" >/dev/null 2>&1 || true
    echo "removed $P-*"
}
trap cleanup EXIT

# curl inside a running node, which has curl and the CA. USER is elastic or myaiserv; a
# body goes through stdin (Elasticsearch refuses a body where an API takes none).
es_request() {  # CURL_OPTIONS NODE USER METHOD PATH [BODY]
    local opts="$1" pw="$ELASTIC_PASSWORD" data=()
    [[ "$3" == myaiserv ]] && pw="$APP_PASSWORD"
    [[ -n "${6:-}" ]] && data=(-H 'Content-Type: application/json' --data-binary @-)
    # shellcheck disable=SC2086
    printf '%s' "${6:-}" | podman exec -i "$P-$2" curl -sS $opts --cacert "$CERTS/ca/ca.crt" \
        -u "$3:$pw" -X "$4" "${data[@]}" "https://$2:9200$5"
}
es_curl() { es_request "-w \n" "$@"; }  # NODE USER METHOD PATH [BODY]: the body
status_of() { es_request "-o /dev/null -w %{http_code}" "$@"; }  # ...: the HTTP status
health() {  # NODE [QUERY]
    es_curl "$1" elastic GET "/_cluster/health?filter_path=status,number_of_nodes,active_shards,unassigned_shards,timed_out${2:+&$2}"
}
wait_health() {  # NODE STATUS NODES TIMEOUT_S
    local deadline=$((SECONDS + $4)) out
    while ((SECONDS < deadline)); do
        if (($(podman ps -q --filter "name=^$P-es0" | wc -l) < $3)); then
            podman ps -a --filter "name=^$P-es0" --format '{{.Names}} {{.Status}}'
            fail "fewer than $3 nodes are running"
        fi
        out="$(health "$1" "wait_for_status=$2&wait_for_nodes=$3&timeout=5s" 2>/dev/null || true)"
        if [[ "$out" == *"\"status\":\"$2\""* && "$out" == *"\"number_of_nodes\":$3,"* && "$out" != *'"timed_out":true'* ]]; then
            echo "$out"
            return 0
        fi
        sleep 2
    done
    echo "last: $out"
    return 1
}
master() { es_curl "$1" elastic GET '/_cat/master?h=node' | tr -d '[:space:]'; }
processes() {  # what runs in a node: tini, Elasticsearch, the relays; no zombie
    podman top "$P-$1" pid ppid state args |
        awk 'NR == 1 || /tini|java/ || (/socat/ && !seen[$NF]++)' | cut -c1-150
    echo "socat processes (listeners and one per open connection): $(podman top "$P-$1" args | grep -c '^socat')"
    if podman top "$P-$1" state | awk 'NR > 1' | grep -q Z; then fail "zombie in $1"; fi
    echo "no zombie"
}
node_env() {  # NODE: docker-compose.yml's x-es-env, then security, TLS and the relay
    local n="$1"
    printf '%s\n' \
        "cluster.name=myaiserv" \
        "discovery.seed_hosts=es01,es02,es03" \
        "cluster.initial_master_nodes=es01,es02,es03" \
        "xpack.security.enabled=true" \
        "bootstrap.memory_lock=true" \
        "ES_JAVA_OPTS=-Xms${ES_HEAP:-1g} -Xmx${ES_HEAP:-1g}" \
        "path.repo=/snapshots" \
        "node.name=$n" \
        "ELASTIC_PASSWORD=$ELASTIC_PASSWORD" \
        "xpack.security.http.ssl.enabled=true" \
        "xpack.security.http.ssl.key=certs/$n/$n.key" \
        "xpack.security.http.ssl.certificate=certs/$n/$n.crt" \
        "xpack.security.http.ssl.certificate_authorities=certs/ca/ca.crt" \
        "xpack.security.transport.ssl.enabled=true" \
        "xpack.security.transport.ssl.key=certs/$n/$n.key" \
        "xpack.security.transport.ssl.certificate=certs/$n/$n.crt" \
        "xpack.security.transport.ssl.certificate_authorities=certs/ca/ca.crt" \
        "xpack.security.transport.ssl.verification_mode=certificate" \
        "MYAISERV_ES_TRANSPORT_RELAY=$RELAY" \
        "MYAISERV_ES_FILE_REALM_DIR=certs/realm"
}

# The host's hard limits (see the header). Naming any --ulimit drops podman's configured
# defaults for the others, which then fail to apply: all three are named.
start_node() {
    local n="$1" num="${1#es}" envfile
    envfile="$(mktemp)"
    node_env "$n" >"$envfile"
    podman run -d --name "$P-$n" --hostname "$n" --network "$P-net" --network-alias "$n" \
        --ulimit nofile=20000:20000 --ulimit memlock=8388608:8388608 --ulimit nproc=16384:16384 \
        --env-file "$envfile" \
        -v "$P-data$num:/usr/share/elasticsearch/data" -v "$P-snapshots:/snapshots" \
        -v "$P-certs:$CERTS:ro" "$IMAGE" >/dev/null
    rm -f "$envfile"
}

# ------------------------------------------------------------------------------------------
step "build $IMAGE"
if [[ -z "${SKIP_BUILD:-}" ]]; then
    [[ -f "$HERE/elasticsearch-$ES_VERSION.zip" ]] || cp "$ES_ZIP" "$HERE/"
    tb=$EPOCHREALTIME
    podman build -q --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t "$IMAGE" "$HERE"
    echo "built in $(elapsed "$tb")s"
fi
podman image inspect "$IMAGE" --format 'image size: {{.Size}} bytes' |
    awk '{ printf "%s (%.0f MB)\n", $0, $3 / 1000000 }'

step "network and volumes"
podman rm -f -t 5 "$P-setup" "${NODES[@]/#/$P-}" >/dev/null 2>&1 || true
podman volume rm -f "$P-certs" "$P-snapshots" "$P-data01" "$P-data02" "$P-data03" >/dev/null 2>&1 || true
podman network rm -f "$P-net" >/dev/null 2>&1 || true
podman network create "$P-net" >/dev/null
for v in certs snapshots data01 data02 data03; do podman volume create "$P-$v" >/dev/null; done
echo "$P-net; volumes $P-{certs,snapshots,data01,data02,data03}"

step "setup one-shot: certificates (then it waits for the cluster to create the user)"
ts=$EPOCHREALTIME
podman run -d --name "$P-setup" --network "$P-net" --user 0 \
    -e ELASTIC_PASSWORD="$ELASTIC_PASSWORD" -e MYAISERV_ES__USERNAME=myaiserv \
    -e MYAISERV_ES__PASSWORD="$APP_PASSWORD" -e MYAISERV_ES__INDEX_PREFIX="$PREFIX" \
    -v "$P-certs:$CERTS" -v "$P-snapshots:/snapshots" \
    -v "$HERE/setup.sh:/usr/local/bin/es-setup.sh:ro" \
    "$IMAGE" bash /usr/local/bin/es-setup.sh >/dev/null
# The one-shot's healthcheck in compose; here polled by hand (podman runs none by itself).
until podman exec "$P-setup" test -f "$CERTS/.ready" 2>/dev/null; do
    podman container exists "$P-setup" && [[ "$(podman inspect -f '{{.State.Running}}' "$P-setup")" == true ]] ||
        fail "setup stopped before the certificates were ready"
    sleep 1
done
echo "certificates ready after $(elapsed "$ts")s:"
podman exec "$P-setup" bash -c "cd $CERTS && find . -printf '%M %u:%g %p\n' | sort -k3"
podman exec "$P-setup" bash -c "jdk/bin/keytool -printcert -file $CERTS/es01/es01.crt" | grep -A4 SubjectAlternativeName

step "start es01 es02 es03"
tboot=$EPOCHREALTIME
for n in "${NODES[@]}"; do start_node "$n"; done
podman ps --filter "name=^$P-" --format '{{.Names}}  {{.Status}}'

step "wait for green (3 nodes)"
wait_health es02 green 3 300 || fail "no green cluster"
BOOT_S="$(elapsed "$tboot")"
echo "boot to green: ${BOOT_S}s"
echo "master: $(master es02)"
es_curl es02 elastic GET '/_cat/nodes?h=name,ip,node.role,master&s=name'
es_curl es02 elastic GET '/_nodes/transport?filter_path=nodes.*.transport.publish_address,nodes.*.name'
echo "HTTP certificate checked against host name es02 (curl --cacert, no -k), TLS version:"
podman exec "$P-es01" curl -sS -o /dev/null -w '%{ssl_verify_result} %{http_code}\n' \
    --cacert "$CERTS/ca/ca.crt" -u "elastic:$ELASTIC_PASSWORD" https://es02:9200/_cluster/health
echo "no credentials: $(podman exec "$P-es01" curl -sS -o /dev/null -w '%{http_code}' --cacert "$CERTS/ca/ca.crt" https://es02:9200/_cluster/health)"
echo "plain HTTP: $(podman exec "$P-es01" curl -sS -o /dev/null http://es02:9200/ 2>&1 | head -c 80)"
echo "bootstrap checks (development mode) and memory lock, es01 log:"
podman logs "$P-es01" 2>&1 | grep -iE 'bootstrap check|memory lock|mlockall|bound_addresses|publish_address' | cut -c1-220 | head -8
processes es01
echo "file realm as es01 loaded it:"
podman exec "$P-es01" stat -c '%A %U:%G %n' config/users config/users_roles config/roles.yml

step "compose healthcheck command (in es03)"
podman exec "$P-es03" sh -c 'curl -fsS --cacert config/certs/ca/ca.crt -u "elastic:$ELASTIC_PASSWORD" "https://localhost:9200/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null' &&
    echo "healthy"

step "setup one-shot: role and user"
rc="$(podman wait "$P-setup")"
podman logs "$P-setup" 2>&1 | tail -5
[[ "$rc" == 0 ]] || fail "setup exited $rc"
echo "setup exited 0 after $(elapsed "$ts")s"
es_curl es01 myaiserv GET '/_security/_authenticate?filter_path=username,roles,authentication_realm.name'

step "as myaiserv: template, index (1 replica), alias, bulk, search, point in time"
es_curl es01 myaiserv PUT "/_index_template/$PREFIX-selftest" \
    "{\"index_patterns\":[\"$PREFIX-selftest-v*\"],\"priority\":100,\"template\":{\"settings\":{\"number_of_shards\":2,\"number_of_replicas\":1},\"mappings\":{\"properties\":{\"title\":{\"type\":\"text\"},\"n\":{\"type\":\"integer\"}}}}}"
es_curl es01 myaiserv PUT "/$PREFIX-selftest-v1-0001" '{"aliases":{"'"$PREFIX"'-selftest":{}}}'
es_curl es01 myaiserv GET "/_cluster/health/$PREFIX-selftest-v1-0001?wait_for_status=green&timeout=30s&filter_path=status"
bulk=""
for i in 1 2 3 4 5 6; do
    bulk+="{\"index\":{\"_id\":\"d$i\"}}"$'\n'"{\"title\":\"document number $i about elasticsearch\",\"n\":$i}"$'\n'
done
es_curl es01 myaiserv POST "/$PREFIX-selftest/_bulk?refresh=true&filter_path=errors,items.*.status" "$bulk"
es_curl es02 myaiserv GET "/$PREFIX-selftest/_count" | tee /tmp/"$P"-count.json
grep -q '"count":6' /tmp/"$P"-count.json || fail "expected 6 documents"
pit="$(es_curl es03 myaiserv POST "/$PREFIX-selftest/_pit?keep_alive=1m" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
[[ -n "$pit" ]] || fail "no point in time"
es_curl es03 myaiserv POST "/_search?filter_path=hits.total,pit_id" \
    "{\"pit\":{\"id\":\"$pit\",\"keep_alive\":\"1m\"},\"size\":1,\"query\":{\"match\":{\"title\":\"elasticsearch\"}}}" | cut -c1-80
es_curl es03 myaiserv DELETE "/_pit" "{\"id\":\"$pit\"}"
# The rest of what the index manager and `myaiserv backup` call: settings, mappings,
# indices by pattern (hidden and closed too), _cat/indices, an atomic alias swap.
es_curl es01 myaiserv PUT "/$PREFIX-selftest-v1-0001/_settings" '{"index":{"refresh_interval":"1s"}}'
es_curl es01 myaiserv GET "/$PREFIX-selftest-v*?expand_wildcards=all&allow_no_indices=true&filter_path=*.aliases,*.mappings._meta"
es_curl es01 myaiserv GET "/$PREFIX-selftest/_mapping?filter_path=*.mappings.properties.n"
es_curl es01 myaiserv GET "/_cat/indices/$PREFIX-*?h=index,status,health,docs.count&expand_wildcards=all"
es_curl es01 myaiserv PUT "/$PREFIX-selftest-v2-0001" '{"settings":{"number_of_replicas":1}}' >/dev/null
swap() {  # FROM TO: the alias moves in one step, as a reindex ends
    es_curl es01 myaiserv POST "/_aliases" "{\"actions\":[{\"add\":{\"index\":\"$PREFIX-selftest-$2-0001\",\"alias\":\"$PREFIX-selftest\"}},{\"remove\":{\"index\":\"$PREFIX-selftest-$1-0001\",\"alias\":\"$PREFIX-selftest\"}}]}"
}
swap v1 v2
es_curl es01 myaiserv GET "/_alias/$PREFIX-selftest"
swap v2 v1
es_curl es01 myaiserv GET "/_alias/$PREFIX-selftest*"
es_curl es01 myaiserv DELETE "/$PREFIX-selftest-v2-0001"
es_curl es01 myaiserv GET "/_cat/shards/$PREFIX-selftest-v1-0001?h=index,shard,prirep,state,node&s=shard,prirep"
es_curl es01 myaiserv GET '/_nodes?filter_path=nodes.*.version,nodes.*.settings.path.repo' | cut -c1-200

step "as myaiserv: snapshot repository under path.repo, snapshot, restore (myaiserv backup)"
es_curl es01 myaiserv PUT "/_snapshot/$PREFIX-selftest" "{\"type\":\"fs\",\"settings\":{\"location\":\"/snapshots/$PREFIX-selftest\"}}"
es_curl es01 myaiserv PUT "/_snapshot/$PREFIX-selftest/snap-1?wait_for_completion=true&filter_path=snapshot.state,snapshot.indices" \
    "{\"indices\":\"$PREFIX-selftest-v1-0001\",\"include_global_state\":false}"
es_curl es01 myaiserv GET "/_snapshot/$PREFIX-selftest/snap-1?filter_path=snapshots.snapshot,snapshots.state"
es_curl es01 myaiserv DELETE "/$PREFIX-selftest-v1-0001"
es_curl es01 myaiserv POST "/_snapshot/$PREFIX-selftest/snap-1/_restore?wait_for_completion=true&filter_path=snapshot.shards" \
    "{\"indices\":\"$PREFIX-selftest-v1-0001\",\"include_aliases\":true,\"include_global_state\":false,\"index_settings\":{\"index.number_of_replicas\":1}}"
es_curl es01 myaiserv GET "/_cluster/health/$PREFIX-selftest-v1-0001?wait_for_status=green&timeout=60s&filter_path=status"
es_curl es01 myaiserv GET "/$PREFIX-selftest/_count"
es_curl es01 myaiserv DELETE "/_snapshot/$PREFIX-selftest/snap-1"
es_curl es01 myaiserv DELETE "/_snapshot/$PREFIX-selftest"

step "as myaiserv: what the role refuses (expect 403 each)"
for what in "PUT /other-index" "GET /.security/_search" "GET /_security/user" \
    "PUT /_cluster/settings {\"persistent\":{\"cluster.routing.allocation.enable\":\"none\"}}" \
    "POST /_security/user/intruder {\"password\":\"123456\",\"roles\":[\"superuser\"]}"; do
    read -r method path body <<<"$what"
    code="$(status_of es01 myaiserv "$method" "$path" "${body:-}")"
    printf '%s %s -> %s\n' "$method" "$path" "$code"
    [[ "$code" == 403 ]] || fail "expected 403"
done

lose_node() {  # NODE: stop it, search and health from another, restart, green again
    local n="$1" other="$2" tstop
    step "stop $n (master now: $(master "$other"))"
    tstop=$EPOCHREALTIME
    podman stop -t 30 "$P-$n" >/dev/null
    echo "stopped in $(elapsed "$tstop")s; container: $(podman inspect -f '{{.State.Status}}' "$P-$n"), processes left: $(podman top "$P-$n" pid 2>/dev/null | awk 'NR > 1' | wc -l)"
    wait_health "$other" yellow 2 120 || fail "no yellow 2-node cluster"
    echo "master: $(master "$other")"
    es_curl "$other" myaiserv GET "/$PREFIX-selftest/_search?q=title:number&size=0&filter_path=hits.total,_shards" | tee /tmp/"$P"-search.json
    grep -q '"value":6' /tmp/"$P"-search.json || fail "search lost documents"
    step "restart $n"
    tstop=$EPOCHREALTIME
    podman start "$P-$n" >/dev/null
    wait_health "$other" green 3 300 || fail "not green again"
    echo "back to green with 3 nodes in $(elapsed "$tstop")s; master: $(master "$other")"
    processes "$n"
}
# First the elected master, then es01 (the first master-eligible node) or, were es01 the
# one just stopped, es02.
first="$(master es02)"
lose_node "$first" "$([[ "$first" == es01 ]] && echo es02 || echo es01)"
if [[ "$first" == es01 ]]; then lose_node es02 es03; else lose_node es01 "$([[ "$first" == es02 ]] && echo es03 || echo es02)"; fi

step "done: image $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1000000 }'), boot to green ${BOOT_S}s"
