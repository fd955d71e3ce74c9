#!/bin/sh
# nginx for the local stand-in (docker/local/Dockerfile). docker/nginx.conf asks Docker's
# embedded DNS (127.0.0.11) for the `web` instances. Other engines serve container DNS
# elsewhere (podman's aardvark-dns answers on the network's gateway): when 127.0.0.11 is
# not this container's nameserver, nginx runs a copy of the file that asks the one in
# /etc/resolv.conf instead. Nothing else in the file changes.
set -eu
conf=/etc/nginx/nginx.conf
nameserver="$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)"
if [ -n "$nameserver" ] && [ "$nameserver" != 127.0.0.11 ] && grep -q 'resolver 127\.0\.0\.11 ' "$conf"; then
    # Beside the original, so its relative includes (mime.types) still resolve.
    sed "s/resolver 127\.0\.0\.11 /resolver $nameserver /" "$conf" > /etc/nginx/nginx.local.conf
    if [ "$1" = nginx ]; then
        shift
        set -- nginx -c /etc/nginx/nginx.local.conf "$@"
    fi
fi
exec "$@"
