# One image per service: `docker build --build-arg SERVICE=users .`
# docker-compose.yml builds each service from this file. Dependencies are
# compiled in their own layer (cargo-chef), so a source change rebuilds only
# the workspace crates; the whole workspace is compiled in one `builder`
# stage that knows nothing of SERVICE, so the seven images of one
# `docker-compose build` share it (built once, then cached). The runtime
# stage is distroless, runs as non-root and holds one stripped binary (glibc
# from the base image). The balancer is built with `--target balancer`,
# which adds the storefront's files.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# `--profile container`: release without LTO and with parallel codegen, so
# a cold image build fits CI's budget on two cores (Cargo.toml says what it
# costs at run time).
# Dependencies are cooked for exactly the packages and targets built after
# them: cargo unifies features over what one command builds, so cooking the
# whole workspace (the load generator, benches) would leave the services'
# dependencies to be compiled again with other features.
FROM chef AS builder
ARG PACKAGES="--bins -p users -p products -p cart -p mailer -p stats -p payments-mock -p balancer"
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --profile container --locked ${PACKAGES} --recipe-path recipe.json
COPY . .
RUN cargo build --profile container --locked ${PACKAGES} \
 && mkdir -p /out/data

# Picks the one binary; this stage has a shell (the runtime has none), so
# a missing or unknown SERVICE fails here with a message instead of copying
# the whole target directory.
FROM builder AS pick
ARG SERVICE
RUN test -n "${SERVICE}" \
      || { echo "Dockerfile: build with --build-arg SERVICE=<users|products|cart|mailer|stats|payments-mock|balancer>" >&2; exit 1; } \
 && test -f "target/container/${SERVICE}" \
      || { echo "Dockerfile: SERVICE=${SERVICE} is not a binary of this workspace" >&2; exit 1; } \
 && cp "target/container/${SERVICE}" /out/service

FROM gcr.io/distroless/cc-debian12:nonroot AS service
COPY --from=pick /out/service /usr/local/bin/service
# Services write only to their data directory (SQLite or the mail outbox),
# owned by the user they run as; with PostgreSQL the root filesystem can be
# mounted read-only.
COPY --from=pick --chown=65532:65532 /out/data /var/lib/shop
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
