# redpush container image.
#
# No Docker engine runs on the project's build machines, so this file is not
# built in CI. Its build step is the same `cargo build --release --locked`
# that CI and `cargo deb` run (tests/packaging.rs builds and installs the
# .deb from that build), and the runtime image holds the same files the
# Debian package installs.
#
#   docker build -t redpush:0.1.0 .
#   docker run -v redpush-queue:/var/lib/redpush -v ./redpush.toml:/etc/redpush/redpush.toml:ro \
#       redpush:0.1.0 --config /etc/redpush/redpush.toml
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# CA roots for HTTPS receivers (redpush also reads the system store).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/redpush --shell /usr/sbin/nologin redpush \
    && install -d -m 0700 -o redpush -g redpush /var/lib/redpush
COPY --from=build /src/target/release/redpush /usr/bin/redpush
# The example config, listening on all interfaces so the port can be
# published. A config mounted over it needs the same `listen`: no flag here
# overrides the file.
COPY config/redpush.example.toml /etc/redpush/redpush.toml
RUN sed -i 's/^listen = .*/listen = "0.0.0.0:9121"/' /etc/redpush/redpush.toml
USER redpush:redpush
# The on-disk queue: keep it on a volume so a backlog survives the container.
VOLUME ["/var/lib/redpush"]
EXPOSE 9121
# `redpush healthcheck` asks the agent's /healthz as the same config
# describes it: HTTP or HTTPS ([http] TLS), on the configured port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/bin/redpush", "healthcheck", "--config", "/etc/redpush/redpush.toml"]
ENTRYPOINT ["/usr/bin/redpush"]
CMD ["--config", "/etc/redpush/redpush.toml"]
