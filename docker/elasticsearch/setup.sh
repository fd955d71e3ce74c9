#!/bin/bash
# The Elasticsearch cluster's one-shot setup, in the manner of the `setup` service of
# Elastic's own docker-compose example. It runs as root (`user: "0"`) in the Elasticsearch
# image, Elastic's or ours (it needs bash, curl, unzip and elasticsearch-certutil, which
# both have), with the `certs` volume at /usr/share/elasticsearch/config/certs.
#
#   setup.sh certs   a CA and one certificate per node (DNS <node> and localhost, IP
#                    127.0.0.1), made once: existing ones are kept, missing nodes added.
#                    The role and the user MyAIServ connects as, as file-realm files in
#                    realm/ (rewritten each run: the password follows the environment).
#                    And the snapshot folder (/snapshots) handed to the Elasticsearch user.
#   setup.sh users   waits for the cluster, then makes sure that user can log in: where
#                    the nodes load realm/ (MYAISERV_ES_FILE_REALM_DIR, our image) it
#                    already can; elsewhere (Elastic's image) the role and the user are
#                    created, or updated, through the security API (the native realm).
#   setup.sh         both, in that order (the default).
#
# Why two realms: the security API keeps users in the .security index, whose mapping needs
# the analysis-common module, which the integ-test distribution our image is built from
# lacks (creating it fails: "Unknown filter type [pattern_capture]"). The file realm needs
# no index, so on our image the role and user live in files every node loads at start.
# Same role, same user, same password, either way.
#
# Environment: ES_NODES (es01,es02,es03), ELASTIC_PASSWORD, MYAISERV_ES__USERNAME
# (myaiserv), MYAISERV_ES__PASSWORD, MYAISERV_ES__INDEX_PREFIX (myaiserv), ES_SETUP_URLS
# (https://<node>:9200 for each node), SETUP_TIMEOUT_S (600), SNAPSHOTS_DIR (/snapshots).
#
# Files in the volume: ca/ca.crt (world-readable: clients need it), ca/ca.key (root only),
# <node>/<node>.crt|key and realm/ (group 0, which the nodes' uid 1000 belongs to, as in
# Elastic's image), and .ready once all of it is in place (the one-shot's healthcheck).
set -euo pipefail

ES_HOME=/usr/share/elasticsearch
CERTS="${CERTS_DIR:-$ES_HOME/config/certs}"
IFS=',' read -r -a NODES <<<"${ES_NODES:-es01,es02,es03}"
PREFIX="${MYAISERV_ES__INDEX_PREFIX:-myaiserv}"
APP_USER="${MYAISERV_ES__USERNAME:-myaiserv}"
ROLE=myaiserv_app

log() { printf 'es-setup: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# What MyAIServ does (myaiserv/search, indexers, myaiserv/backup): cluster health and node
# info (monitor); its index templates (manage_index_templates: Elasticsearch has no
# per-name template privilege); snapshots of its indices into a repository it registers
# under path.repo, and their restore (the snapshot and repository actions); and everything
# on its own indices and aliases, <prefix>-*: create, delete, alias swaps, settings,
# mappings (manage), bulk writes (write), search and point in time (read). Nothing on other
# indices, users or cluster settings.
role_json() {
    printf '{"cluster":["monitor","manage_index_templates","monitor_snapshot","create_snapshot","cluster:admin/repository/*","cluster:admin/snapshot/*"],"indices":[{"names":["%s-*"],"privileges":["manage","read","write"]}]}' "$PREFIX"
}

check_app_settings() {
    [[ -n "${MYAISERV_ES__PASSWORD:-}" ]] || die "set MYAISERV_ES__PASSWORD"
    ((${#MYAISERV_ES__PASSWORD} >= 6)) || die "MYAISERV_ES__PASSWORD needs 6 characters or more"
    [[ "$PREFIX" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "bad MYAISERV_ES__INDEX_PREFIX: $PREFIX"
    [[ "$APP_USER" =~ ^[A-Za-z0-9_.@-]+$ ]] || die "bad MYAISERV_ES__USERNAME: $APP_USER"
}

# The file realm: users, users_roles and roles.yml, made with the distribution's own tool
# (bcrypt hashes) in a scratch config folder.
make_file_realm() {
    check_app_settings
    local conf
    conf="$(mktemp -d)"
    cp "$ES_HOME/config/elasticsearch.yml" "$ES_HOME/config/jvm.options" "$conf/"
    printf '%s: %s\n' "$ROLE" "$(role_json)" >"$conf/roles.yml"  # JSON is YAML
    : >"$conf/users"
    : >"$conf/users_roles"
    # The password through stdin (the tool asks twice), not the command line.
    local out
    out="$(printf '%s\n%s\n' "$MYAISERV_ES__PASSWORD" "$MYAISERV_ES__PASSWORD" |
        ES_PATH_CONF="$conf" "$ES_HOME/bin/elasticsearch-users" useradd "$APP_USER" -r "$ROLE" 2>&1)" ||
        die "elasticsearch-users failed: $out"
    mkdir -p "$CERTS/realm"
    cp "$conf/users" "$conf/users_roles" "$conf/roles.yml" "$CERTS/realm/"
    rm -rf "$conf"
    log "file realm: role $ROLE (indices $PREFIX-*) and user $APP_USER in $CERTS/realm"
}

make_certs() {
    mkdir -p "$CERTS"
    # Not ready until this run has rewritten the realm: nodes must not load an old one.
    rm -f "$CERTS/.ready"
    local work
    work="$(mktemp -d)"
    if [[ ! -f "$CERTS/ca/ca.crt" || ! -f "$CERTS/ca/ca.key" ]]; then
        log "making the CA"
        "$ES_HOME/bin/elasticsearch-certutil" ca --pem --silent --out "$work/ca.zip"
        unzip -q -o "$work/ca.zip" -d "$CERTS"
    fi
    local missing=() node
    for node in "${NODES[@]}"; do
        [[ -f "$CERTS/$node/$node.crt" && -f "$CERTS/$node/$node.key" ]] || missing+=("$node")
    done
    if ((${#missing[@]})); then
        log "making certificates for ${missing[*]}"
        {
            echo "instances:"
            for node in "${missing[@]}"; do
                printf '  - name: %s\n    dns: [%s, localhost]\n    ip: [127.0.0.1]\n' "$node" "$node"
            done
        } >"$work/instances.yml"
        "$ES_HOME/bin/elasticsearch-certutil" cert --pem --silent --in "$work/instances.yml" \
            --ca-cert "$CERTS/ca/ca.crt" --ca-key "$CERTS/ca/ca.key" --out "$work/certs.zip"
        unzip -q -o "$work/certs.zip" -d "$CERTS"
    fi
    rm -rf "$work"
    make_file_realm
    # Owned by root, readable by the nodes through gid 0; the CA certificate by anyone.
    chown -R 0:0 "$CERTS"
    chmod 0755 "$CERTS" "$CERTS/ca"
    chmod 0644 "$CERTS/ca/ca.crt"
    chmod 0600 "$CERTS/ca/ca.key"
    chmod 0750 "$CERTS/realm"
    chmod 0640 "$CERTS/realm/"*
    for node in "${NODES[@]}"; do
        chmod 0750 "$CERTS/$node"
        chmod 0640 "$CERTS/$node/$node.crt" "$CERTS/$node/$node.key"
    done
    local snapshots="${SNAPSHOTS_DIR:-/snapshots}"
    if [[ -d "$snapshots" ]]; then
        # path.repo: every node writes there as uid 1000.
        chown 1000:0 "$snapshots"
        chmod 0775 "$snapshots"
    fi
    touch "$CERTS/.ready"
    log "certificates ready in $CERTS"
}

json_string() {  # a JSON string literal; control characters are refused
    local s="$1"
    [[ "$s" =~ [[:cntrl:]] ]] && die "a password may not hold control characters"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

# curl as `elastic` (or AS_USER:AS_PASSWORD) against the first node that answers; prints
# the body, fails on a status of 300 or more.
es() {  # METHOD PATH [BODY]
    local url out code credentials="${AS_USER:-elastic}:${AS_PASSWORD:-$ELASTIC_PASSWORD}"
    for url in "${URLS[@]}"; do
        out="$(mktemp)"
        # The body (it may hold a password) goes through stdin, not the command line.
        code="$(printf '%s' "${3:-}" | curl -sS -o "$out" -w '%{http_code}' \
            --cacert "$CERTS/ca/ca.crt" -u "$credentials" -X "$1" \
            -H 'Content-Type: application/json' ${3:+--data-binary @-} "$url$2" 2>/dev/null)" \
            || code=000
        if [[ "$code" != 000 ]]; then
            cat "$out"
            rm -f "$out"
            [[ "$code" -lt 300 ]]
            return
        fi
        rm -f "$out"
    done
    return 1
}

make_users() {
    [[ -n "${ELASTIC_PASSWORD:-}" ]] || die "set ELASTIC_PASSWORD"
    check_app_settings
    local node
    URLS=()
    if [[ -n "${ES_SETUP_URLS:-}" ]]; then
        IFS=',' read -r -a URLS <<<"$ES_SETUP_URLS"
    else
        for node in "${NODES[@]}"; do URLS+=("https://$node:9200"); done
    fi
    local deadline=$((SECONDS + ${SETUP_TIMEOUT_S:-600}))
    log "waiting for the cluster (${URLS[*]})"
    until es GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null; do
        ((SECONDS < deadline)) || die "the cluster did not turn yellow in time"
        sleep 3
    done
    local whoami
    if whoami="$(AS_USER="$APP_USER" AS_PASSWORD="$MYAISERV_ES__PASSWORD" es GET '/_security/_authenticate?filter_path=username,roles,authentication_realm.type')" &&
        [[ "$whoami" == *'"type":"file"'* ]]; then
        log "the nodes load the file realm: $whoami"
        return
    fi
    local deadline2=$((SECONDS + 120))
    until es PUT "/_security/role/$ROLE" "$(role_json)" >/dev/null; do
        ((SECONDS < deadline2)) || { es PUT "/_security/role/$ROLE" "$(role_json)" >&2 || true; die "could not create the role"; }
        sleep 3
    done
    local user
    user="$(printf '{"password":%s,"roles":["%s"],"full_name":"MyAIServ"}' "$(json_string "$MYAISERV_ES__PASSWORD")" "$ROLE")"
    es PUT "/_security/user/$APP_USER" "$user" >/dev/null || { es PUT "/_security/user/$APP_USER" "$user" >&2 || true; die "could not create the user"; }
    whoami="$(AS_USER="$APP_USER" AS_PASSWORD="$MYAISERV_ES__PASSWORD" es GET '/_security/_authenticate?filter_path=username,roles,authentication_realm.type')" ||
        die "user $APP_USER cannot log in: $whoami"
    log "native realm: role $ROLE (indices $PREFIX-*) and user $APP_USER ready: $whoami"
}

case "${1:-all}" in
    certs) make_certs ;;
    users) make_users ;;
    all) make_certs; make_users ;;
    *) die "usage: setup.sh [certs|users|all]" ;;
esac
