# The ecs-registrator image: one static binary on scratch. `make image` builds it offline: the binary
# and the CA bundle are prepared on the host (dist/image/) and copied in, so no base image or module
# download is needed at build time.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ecs-registrator" \
      org.opencontainers.image.description="Registers ECS task containers with the local Consul agent, with health checks and drain" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ecs-registrator/ecs-registrator"

# TLS to the ECS API (optional enrichment) and to a Consul agent with HTTPS.
COPY dist/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dist/image/ecs-registrator /ecs-registrator

# JSON logs (CloudWatch); every flag has a REGISTRATOR_<FLAG> variable.
ENV REGISTRATOR_LOG_FORMAT=json

# The image has no shell or curl: the binary checks its own /healthz (liveness: a Consul outage must
# never get the daemon replaced; `healthcheck -ready` checks /readyz).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/ecs-registrator", "healthcheck"]

# Root: reading the Docker socket needs it. The daemon only sends GET requests, but a read-only mount
# of a socket does not limit the API: for least privilege give it a GET-only socket proxy instead
# (packaging/README.md, "Least privilege").
ENTRYPOINT ["/ecs-registrator"]
