# syntax=docker/dockerfile:1
# Multi-stage build of the warren CLI/worker.
#   docker build -t warren .
#   docker run --rm warren --help

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/warren ./cmd/warren

# bookworm-slim rather than distroless: `warren worker --exec` handlers need sh.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 warren \
 && useradd --system --uid 10001 --gid warren --home-dir /app --shell /usr/sbin/nologin warren
WORKDIR /app
COPY --from=build /out/warren /usr/local/bin/warren
COPY examples/exec /app/examples/exec
USER warren:warren
ENTRYPOINT ["/usr/local/bin/warren"]
CMD ["--help"]
