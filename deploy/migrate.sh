#!/bin/sh
# The one-shot `migrate` service (compose.yaml): runs before web, workers and
# beat start, and again on every upgrade before the new ones start
# (docs/deployment.md, "Upgrades"). It logs in as the database owner; the
# running services log in as the application's role, which it (re)grants.
set -eu
export DATABASE_URL="$OWNER_DATABASE_URL"
app_role="${PSYFI_DB_APP_ROLE:-psyfi_app}"
python manage.py migrate --noinput
# The role split (docs/deployment.md, "Database roles"); idempotent.
python manage.py db_roles_sql --owner "${PSYFI_DB_OWNER_ROLE:-psyfi_owner}" --app "$app_role" \
    --database "${PSYFI_DB_NAME:-psyfi}" \
    | python manage.py dbshell -- -q -v ON_ERROR_STOP=1
echo "ALTER ROLE :\"app_role\" PASSWORD :'app_password';" \
    | python manage.py dbshell -- -q -v ON_ERROR_STOP=1 -v app_role="$app_role" -v app_password="$PSYFI_APP_DB_PASSWORD"
