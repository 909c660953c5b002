#!/bin/sh
# Run once by the postgres image on an empty data folder: the sandbox pool's login role, in the
# drover_registry group that `drover migrate` grants the registry functions to (migration 0005).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pool_password="$DROVER_POOL_DB_PASSWORD" <<'SQL'
CREATE ROLE drover_registry NOLOGIN;
CREATE ROLE drover_pool LOGIN PASSWORD :'pool_password' IN ROLE drover_registry;
SQL
