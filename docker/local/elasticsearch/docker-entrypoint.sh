#!/bin/bash
# Starts Elasticsearch the way Elastic's image does, for the integ-test distribution, which
# does not know it runs in a container:
#   - every environment variable named like a setting (lowercase, with a dot: cluster.name,
#     discovery.seed_hosts, xpack.security.enabled...) or ES_SETTING_CLUSTER_NAME-style
#     becomes a -E option (Elastic's distribution reads them itself; this one does not);
#   - ELASTIC_PASSWORD (or ELASTIC_PASSWORD_FILE) becomes the keystore's
#     bootstrap.password, the `elastic` user's password until one is set through the API;
#   - ES_JAVA_OPTS is read by Elasticsearch's own launcher;
#   - any other command than the default `eswrapper` runs as given (bash, the CLI tools,
#     the setup one-shot).
#
# One addition, off unless MYAISERV_ES_TRANSPORT_RELAY is set: the loopback transport
# relay, for hosts whose limits (open files below 65535, no memory locking) fail the
# bootstrap checks Elasticsearch enforces once transport listens beyond loopback. Each
# node then binds transport to 127.0.0.1 on its own port, and socat carries it over the
# container network:
#   MYAISERV_ES_TRANSPORT_RELAY=es01:9301,es02:9302,es03:9303   (host:port, one per node,
#                                                                host = its node.name)
#   this node (es02):  0.0.0.0:9400     -> 127.0.0.1:9302 (its own transport)
#                      127.0.0.1:9301   -> es01:9400
#                      127.0.0.1:9303   -> es03:9400
# so transport.port=9302, transport.host=127.0.0.1 (bound and published there) and
# discovery.seed_hosts=127.0.0.1:9301,127.0.0.1:9302,127.0.0.1:9303. Nodes still talk only
# over the network, through each other's port 9400 (MYAISERV_ES_RELAY_PORT), with TLS end
# to end: socat only copies bytes. Bootstrap checks stay in development mode (warnings).
# The relays are orphans that tini (PID 1) adopts: when Elasticsearch, tini's only child,
# exits, so does the container and every relay with it.
set -euo pipefail
umask 0002

ES_HOME=/usr/share/elasticsearch
cd "$ES_HOME"

# Elasticsearch and its tools run as uid 1000 (gid 0), as in Elastic's image, even when
# the container was started as root.
run_as_es() {
    if [[ "$(id -u)" == 0 ]]; then
        HOME="$ES_HOME" chroot --userspec=1000:0 / "$@"
    else
        "$@"
    fi
}

if [[ "${1:-eswrapper}" != eswrapper ]]; then
    if [[ "$(id -u)" == 0 && "$(basename "$1")" == elasticsearch ]]; then
        shift
        HOME="$ES_HOME" exec chroot --userspec=1000:0 / "$ES_HOME/bin/elasticsearch" "$@"
    fi
    exec "$@"
fi

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }

# FOO_FILE=/run/secrets/foo -> FOO (the distribution's own helper, as Elastic's image uses).
# shellcheck disable=SC1091
set +u  # the helper reads variables that may be unset
source "$ES_HOME/bin/elasticsearch-env-from-file"
set -u

# -- settings from the environment ----------------------------------------------------
declare -A settings=()
while IFS= read -r -d '' pair; do
    key="${pair%%=*}"
    value="${pair#*=}"
    if [[ "$key" =~ ^[-a-z0-9_]+(\.[-a-z0-9_]+)+$ ]]; then
        settings["$key"]="$value"
    elif [[ "$key" == ES_SETTING_* ]]; then
        # ES_SETTING_XPACK_SECURITY_ENABLED -> xpack.security.enabled; __ stands for _.
        key="${key#ES_SETTING_}"
        key="${key//_/.}"
        key="${key//../_}"
        settings["${key,,}"]="$value"
    fi
done < <(env -0)

# -- the loopback transport relay -------------------------------------------------------
start_relay() {  # LISTEN_ADDRESS LISTEN_PORT TARGET_HOST TARGET_PORT
    local listen="TCP-LISTEN:$2,bind=$1,reuseaddr,fork,nodelay,keepalive"
    local target="TCP:$3:$4,nodelay,keepalive"
    local -a verbosity=()
    [[ -n "${MYAISERV_ES_RELAY_DEBUG:-}" ]] && verbosity=(-d -d)
    log "relay $1:$2 -> $3:$4"
    # The subshell exits at once, so the loop is orphaned to tini, which reaps it. The loop
    # brings a relay back should socat ever fail; socat reaps its own per-connection
    # children. Refused connections while a peer is down are Elasticsearch's to report.
    (
        while :; do
            if [[ -n "${MYAISERV_ES_RELAY_DEBUG:-}" ]]; then
                socat "${verbosity[@]}" "$listen" "$target" || true
            else
                socat "$listen" "$target" 2>/dev/null || true
            fi
            sleep 1
        done &
    )
}

if [[ -n "${MYAISERV_ES_TRANSPORT_RELAY:-}" ]]; then
    relay_port="${MYAISERV_ES_RELAY_PORT:-9400}"
    node="${settings[node.name]:-}"
    [[ -n "$node" ]] || { log "MYAISERV_ES_TRANSPORT_RELAY needs node.name"; exit 1; }
    own_port="" seeds=() peers=()
    IFS=',' read -r -a entries <<<"$MYAISERV_ES_TRANSPORT_RELAY"
    for entry in "${entries[@]}"; do
        entry="${entry//[[:space:]]/}"
        [[ -z "$entry" ]] && continue
        if [[ ! "$entry" =~ ^([A-Za-z0-9._-]+):([0-9]+)$ ]]; then
            log "MYAISERV_ES_TRANSPORT_RELAY: '$entry' is not host:port"
            exit 1
        fi
        host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}"
        if [[ "$port" == "$relay_port" ]]; then
            log "MYAISERV_ES_TRANSPORT_RELAY: port $port is the relay's own (MYAISERV_ES_RELAY_PORT)"
            exit 1
        fi
        seeds+=("127.0.0.1:$port")
        if [[ "$host" == "$node" ]]; then own_port="$port"; else peers+=("$host:$port"); fi
    done
    [[ -n "$own_port" ]] || { log "MYAISERV_ES_TRANSPORT_RELAY does not list this node ($node)"; exit 1; }
    settings[transport.host]=127.0.0.1
    settings[transport.port]="$own_port"
    settings[discovery.seed_hosts]="$(IFS=,; echo "${seeds[*]}")"
    unset 'settings[transport.bind_host]' 'settings[transport.publish_host]'
    start_relay 0.0.0.0 "$relay_port" 127.0.0.1 "$own_port"
    for peer in "${peers[@]}"; do
        start_relay 127.0.0.1 "${peer##*:}" "${peer%:*}" "$relay_port"
    done
fi

# -- users and roles from files ----------------------------------------------------------
# MYAISERV_ES_FILE_REALM_DIR: a folder with users, users_roles and roles.yml (the setup
# one-shot writes them into the certs volume) copied over the file realm's files in
# config/ at each start. The integ-test distribution cannot keep users in the security
# index (it lacks analysis-common, which that index's mapping needs), so MyAIServ's user
# lives there. Every node must load the same files.
if [[ -n "${MYAISERV_ES_FILE_REALM_DIR:-}" ]]; then
    realm="$MYAISERV_ES_FILE_REALM_DIR"
    [[ "$realm" == /* ]] || realm="$ES_HOME/config/$realm"
    for f in users users_roles roles.yml; do
        [[ -r "$realm/$f" ]] || { log "MYAISERV_ES_FILE_REALM_DIR: cannot read $realm/$f"; exit 1; }
    done
    for f in users users_roles roles.yml; do
        # Replaced, not rewritten: the image's empty files are root's and world-readable;
        # these hold password hashes, for Elasticsearch's user and group only.
        rm -f "$ES_HOME/config/$f"
        (umask 0007 && cat "$realm/$f" >"$ES_HOME/config/$f")
    done
    log "file realm loaded from $realm"
fi

# -- the bootstrap password --------------------------------------------------------------
if [[ -n "${ELASTIC_PASSWORD:-}" ]]; then
    # -f creates the keystore if need be and replaces the entry, so a changed
    # ELASTIC_PASSWORD takes effect (it matters only until the password is set by API).
    printf '%s' "$ELASTIC_PASSWORD" | run_as_es "$ES_HOME/bin/elasticsearch-keystore" add -x -f bootstrap.password
fi

if [[ "$(id -u)" == 0 && -n "${TAKE_FILE_OWNERSHIP:-}" ]]; then
    chown -R 1000:0 "$ES_HOME/data" "$ES_HOME/logs"
fi

es_opts=()
for key in "${!settings[@]}"; do
    es_opts+=("-E" "$key=${settings[$key]}")
done

if [[ "$(id -u)" == 0 ]]; then
    HOME="$ES_HOME" exec chroot --userspec=1000:0 / "$ES_HOME/bin/elasticsearch" "${es_opts[@]}"
fi
exec "$ES_HOME/bin/elasticsearch" "${es_opts[@]}"
