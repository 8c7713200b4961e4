# The service image for multi-host deployments (see docker-compose.yml): one
# binary, every role chosen by its subcommand.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/caddy-build-server /usr/local/bin/caddy-build-server
ENTRYPOINT ["caddy-build-server"]
