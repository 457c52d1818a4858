# The ecs-registrator image: one static binary on scratch. `make image` builds it offline, once per
# architecture (linux/amd64 and linux/arm64) and without emulation: there is no RUN step, so the binary
# is cross-compiled on the host and copied in with the host's CA bundle and a bin/ directory. The build
# context is dist/image/linux-<arch>/, which make prepares:
#
#   DOCKER_BUILDKIT=0 docker build --platform linux/arm64 -f Dockerfile dist/image/linux-arm64
#
# The order below matters to the legacy builder (Debian's docker.io has no BuildKit):
#   - the first instruction after FROM scratch must be a COPY: it creates the first image, with the
#     --platform architecture; an ARG, LABEL or ENV first would commit an image of the daemon's own
#     architecture, and the next COPY would then fail ("does not match the specified platform");
#   - that COPY is the binary, which differs per architecture: the legacy builder's cache ignores the
#     platform, and a first layer alike for both (the CA bundle) would hand the arm64 build the amd64
#     image from the cache.
# `make image` checks each image's recorded architecture afterwards.
FROM scratch

COPY ecs-registrator /ecs-registrator
# gliderlabs/registrator's path: bin/ holds the symbolic link registrator -> /ecs-registrator (make
# image-context puts it there), so a task definition with entryPoint ["/bin/registrator"] keeps working.
# The directory is copied, not the link: the builder copies a directory's entries as they are, links
# included, but follows a link named as the source, which would add the binary a second time.
COPY bin /bin
# TLS to the ECS API (optional enrichment) and to a Consul agent with HTTPS.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ecs-registrator" \
      org.opencontainers.image.description="Registers ECS task containers with the local Consul agent, with health checks and drain" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ecs-registrator/ecs-registrator"

# JSON logs (CloudWatch); every flag has a REGISTRATOR_<FLAG> variable.
ENV REGISTRATOR_LOG_FORMAT=json

# The image has no shell or curl: the binary checks its own /healthz (liveness: a Consul outage must
# never get the daemon replaced; `healthcheck -ready` checks /readyz).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/ecs-registrator", "healthcheck"]

# Root: reading the Docker socket needs it. The daemon only sends GET requests, but a read-only mount
# of a socket does not limit the API: for least privilege give it a GET-only socket proxy instead
# (packaging/README.md, "Least privilege").
ENTRYPOINT ["/ecs-registrator"]
