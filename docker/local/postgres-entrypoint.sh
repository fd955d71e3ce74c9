#!/bin/sh
# The official postgres image's start-up, for the local stand-in (docker/local/Dockerfile):
# on an empty PGDATA, initdb with POSTGRES_USER / POSTGRES_PASSWORD (scram-sha-256 over
# the network, trust on the local socket), create POSTGRES_DB, then run the command
# (`postgres ...`) as the postgres user.
set -eu

if [ "$(id -u)" = 0 ]; then
    # A new named volume is owned by root: hand it to postgres, then drop privileges.
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD on first start}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Only the local socket while the database is made: nobody connects half-way.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$db" != postgres ]; then
        createdb --username="$user" --owner="$user" "$db"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
fi

exec "$@"
