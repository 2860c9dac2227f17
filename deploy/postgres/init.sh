#!/bin/sh
# Runs once, when the PostgreSQL volume is first created: one role and one
# database per service, each database owned by its role, so no service can
# read another's tables. Passwords come from the container's environment.
set -eu

create() {
    role="$1"
    password="$2"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$role" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
}

create users "$USERS_DB_PASSWORD"
create products "$PRODUCTS_DB_PASSWORD"
create cart "$CART_DB_PASSWORD"
create mailer "$MAILER_DB_PASSWORD"
create stats "$STATS_DB_PASSWORD"
create payments "$PAYMENTS_DB_PASSWORD"
