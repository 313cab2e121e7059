#!/bin/sh
# One-shot (temporal-schema service): creates Temporal's two PostgreSQL databases and brings their
# schemas to the version this admin-tools image ships. Safe to run on every `compose up`:
# create-database fails harmlessly on an existing database, setup-schema -v 0.0 leaves an existing
# schema alone, and update-schema applies only the missing versions.
set -eu
# TEMPORAL_SCHEMA_DIR: where the release's schema folder is (the admin-tools image's; `npm run test:cluster` sets its own).
schemas=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema}/postgresql/v12
sql() {
  temporal-sql-tool --plugin "$DB" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" --db "$@"
}
for pair in temporal:temporal temporal_visibility:visibility; do
  database=${pair%%:*}
  schema=${pair#*:}
  sql "$database" create-database 2>/dev/null || echo "database $database exists"
  sql "$database" setup-schema -v 0.0
  sql "$database" update-schema -d "$schemas/$schema/versioned"
done
echo "Temporal schemas are up to date"
