# syntax=docker/dockerfile:1
# Gatehouse container image: a static binary on distroless, running as a
# non-root user, state in /data. Build: docker build -t gatehouse .
# (docs/operations.md: Docker). Needs network at build time for modules
# and, when the image's Go differs, the pinned toolchain.

FROM golang:1.27-bookworm AS build
# The patched toolchain every build of this project uses (see Makefile).
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse \
 && mkdir -p /out/data

# distroless/static: CA certificates and tzdata, no shell, no package
# manager; the nonroot variant runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY --from=build --chown=65532:65532 /out/data /data
ENV GATEHOUSE_ADDR=0.0.0.0:8080 \
    GATEHOUSE_DATA_DIR=/data \
    GATEHOUSE_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
# No HEALTHCHECK: the image has no shell or curl. Point the orchestrator
# at GET /healthz (liveness) and GET /readyz (readiness) instead.
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
