# syntax=docker/dockerfile:1
# Multi-stage build of the warren CLI and worker.
#   docker build -t warren --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm warren version
# Builds with the classic builder and with BuildKit (no BuildKit-only syntax).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static binary: the runtime image has no Go toolchain and no libc coupling.
# .git is not in the build context (.dockerignore), so the binary carries no
# VCS revision; VERSION names the build.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/warren ./cmd/warren \
 && /out/warren version

# debian:bookworm-slim rather than distroless: `warren worker --exec`
# handlers need sh, and a handler script may want the usual tools.
#   curl             the compose healthcheck of /healthz
#   tini             PID 1: forwards SIGTERM to warren and reaps orphaned
#                    grandchildren of --exec handlers
#   ca-certificates  amqps:// brokers
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 warren \
 && useradd --system --uid 10001 --gid warren --home-dir /app --shell /usr/sbin/nologin warren
WORKDIR /app
COPY --from=build /out/warren /usr/local/bin/warren
COPY examples/exec /app/examples/exec
COPY deploy/demo-jobs.ndjson /app/deploy/demo-jobs.ndjson
USER 10001:10001
# --metrics-addr :9464 serves /metrics, /healthz and /readyz there.
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/warren"]
CMD ["--help"]
