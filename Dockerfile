# One image per service: `docker build --build-arg SERVICE=users .`
# docker-compose.yml builds each service from this file. Dependencies are
# compiled in their own layer (cargo-chef), so a source change rebuilds only
# the workspace crates; the runtime stage is distroless, runs as non-root and
# holds one static-ish binary (glibc from the base image). The balancer is
# built with `--target balancer`, which adds the storefront's files.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bins \
    -p users -p products -p cart -p mailer -p stats -p payments-mock -p balancer

FROM gcr.io/distroless/cc-debian12:nonroot AS service
ARG SERVICE
COPY --from=builder /app/target/release/${SERVICE} /usr/local/bin/service
# Services write only to their data directory (SQLite or the mail outbox);
# with PostgreSQL the root filesystem can be mounted read-only.
WORKDIR /var/lib/shop
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/service"]

# The balancer's image (`--target balancer`) also holds the storefront, a
# static single-page app it serves at / (no build step: the files as they
# are in the repository).
FROM service AS balancer
COPY --from=builder /app/storefront/public /usr/share/shop/storefront
ENV BALANCER_STOREFRONT_DIR=/usr/share/shop/storefront

# The default target: any service, from `--build-arg SERVICE=…`.
FROM service AS runtime
