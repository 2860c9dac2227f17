#!/bin/sh
# Runs once, when the PostgreSQL volume is first created: one role and one
# database per service, each database owned by its role, so no service can
# read another's tables. Each role's password is the file `init-secrets`
# wrote into the secrets volume (mounted at $SECRETS_DIR).
set -eu
SECRETS_DIR=${SECRETS_DIR:-/run/secrets/shop}

create() {
    role="$1"
    password=$(cat "$SECRETS_DIR/${role}_db_password")
    [ -n "$password" ] || { echo "init.sh: $SECRETS_DIR/${role}_db_password is empty" >&2; exit 1; }
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$role" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
}

for role in users products cart mailer stats payments; do
    create "$role"
done
