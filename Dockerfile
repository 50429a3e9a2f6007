# adms-bridge: a multi-stage build, a small runtime image, a non-root user.
#   docker build -t adms-bridge .
#   docker run -p 8081:8081 -v adms-data:/data adms-bridge     # embedded SQLite in /data
# For several replicas on PostgreSQL behind HAProxy, see docker-compose.yml.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the server binary, from the committed lock file.
RUN cargo build --release --locked -p adms-server --bin adms-bridge \
    && install -D -m 0755 target/release/adms-bridge /out/adms-bridge \
    && install -d -m 0755 /out/data

# glibc, libgcc and CA certificates (webhook receivers over https), nothing else; runs as
# uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/adms-bridge /usr/local/bin/adms-bridge
COPY --from=build --chown=65532:65532 /out/data /data
ENV ADMS_LISTEN=0.0.0.0:8081 \
    ADMS_DATA_DIR=/data \
    ADMS_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8081
# /readyz through the binary itself: the image has no shell and no HTTP client.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/adms-bridge", "probe"]
ENTRYPOINT ["/usr/local/bin/adms-bridge"]
CMD ["serve"]
