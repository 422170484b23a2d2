# redpush container image. No Docker engine runs on the project's build
# machines, so this file is not built in CI; the build step is the same
# `cargo build --release --locked` that CI runs.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/redpush redpush \
    && mkdir -p /var/lib/redpush && chown redpush /var/lib/redpush && chmod 0700 /var/lib/redpush
COPY --from=build /src/target/release/redpush /usr/bin/redpush
COPY config/redpush.example.toml /etc/redpush/redpush.example.toml
USER redpush
VOLUME ["/var/lib/redpush"]
EXPOSE 9121
# Listen on all interfaces inside the container so the port can be published.
ENTRYPOINT ["/usr/bin/redpush", "--listen", "0.0.0.0:9121"]
