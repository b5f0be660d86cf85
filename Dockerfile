# The image of the Kubernetes platform: redis-server (with Sentinel),
# redis-cli and redis-manager, the pods' entrypoint
# (redis-manager instance run | sentinel | probe) and the manager itself.
# Build: docker build -t redis-manager:dev .
# The test node builds the same layout without Docker (hack/k8s-node/lib.sh).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/redis-manager ./cmd/redis-manager

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data
# The platform runs these paths: /usr/local/bin/redis-manager and
# /usr/bin/redis-server.
COPY --from=build /out/redis-manager /usr/local/bin/redis-manager
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/redis-manager"]
