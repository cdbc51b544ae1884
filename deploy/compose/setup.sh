#!/bin/sh
# One-shot set-up of the three-district demo network (docker-compose.yml):
# a development CA, one node folder per district on the shared /data volume,
# each on its own PostgreSQL database, routes to the other two. Skips what
# exists, so `docker compose up` again keeps the state.
set -eu
for d in 440303 510116 411302; do
    if [ ! -f "/data/$d/migrex.toml" ]; then
        migrex init --district "$d" --dir "/data/$d" --ca-dir /data/ca \
            --listen 0.0.0.0:7401 --desk-listen 0.0.0.0:7402 --ops-listen 0.0.0.0:7403 \
            --host "node-$d" \
            --database "postgres://migrex:migrex@postgres:5432/migrex_$d" \
            > "/data/$d/init.txt"
        for p in 440303 510116 411302; do
            [ "$p" = "$d" ] || migrex peer add --config "/data/$d/migrex.toml" \
                --district "$p" --endpoint "https://node-$p:7401"
        done
    fi
done
grep -h "admin token" /data/*/init.txt
