#!/bin/sh
# Deploy: first-start init script for the db service (timescale image, /docker-entrypoint-initdb.d):
# a read-only login for Grafana. Tables and views the migrations create later (as POSTGRES_USER) are
# readable by it through default privileges. Runs once, when the data volume is empty.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$COLDCHAIN_GRAFANA_DB_PASSWORD" <<'EOSQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"DBNAME" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
EOSQL
