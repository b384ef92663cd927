# Vigil's container image: a static binary on distroless, run as a non-root user.
#
#   docker build -t vigil:dev --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm vigil:dev version
#
# The image holds no configuration: mount one at /etc/vigil/vigil.yaml (the default
# command reads it), since a usable one holds the admin token. The gRPC listener
# (ext_proc, ext_authz, grpc.health.v1) is 9000 and the admin HTTP API 9001 when
# the config says so (grpc_addr/admin_addr; the embedded defaults use 127.0.0.1,
# which a container cannot be reached on). Durable state goes to /var/lib/vigil
# (data_dir), owned by the runtime user, so that a named volume mounted there is
# writable. examples/envoy/docker-compose.yaml runs it this way; test/manifests checks
# this file's final stage (static, non-root) without a Docker engine.

# Pinned: a Go at least as new as go.mod's `go` line. Pin by digest as well in a
# release pipeline (golang:1.26.11-trixie@sha256:…).
FROM golang:1.26.11-trixie AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# The version `vigil version` reports: docker build --build-arg VERSION=1.4.0 .
# Declared after the module download, so that changing it reuses that layer.
ARG VERSION=dev
# CGO_ENABLED=0: a static binary that needs no libc, so it runs on distroless/static.
# -trimpath: no build machine paths in the binary; -s -w: no symbol or DWARF tables.
# -buildvcs=false: .git is not in the build context (.dockerignore), so the stamped
# VERSION is all the binary knows of its version; the build checks that it took.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/vigil-project/vigil/server.Version=${VERSION}" \
      -o /out/vigil . \
 && test "$(/out/vigil version)" = "vigil ${VERSION}" \
 && mkdir -p /out/state/vigil

# distroless/static: CA certificates, tzdata and /etc/passwd, no shell or package
# manager. The :nonroot tag's user is 65532; pin by digest in a release pipeline.
FROM gcr.io/distroless/static-debian13:nonroot
# An ARG is scoped to its stage: declared again for the label.
ARG VERSION=dev
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="vigil" \
      org.opencontainers.image.source="https://github.com/vigil-project/vigil"
COPY --from=build /out/vigil /usr/local/bin/vigil
# data_dir, owned by the runtime user: a new named volume copies this ownership. The
# directory is copied as an entry of its parent, so that --chown applies to it.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/
USER 65532:65532
WORKDIR /var/lib/vigil
# 9000: gRPC for Envoy; 9001: admin HTTP (health, metrics, /v1 API, dashboard).
EXPOSE 9000 9001
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["serve", "--config", "/etc/vigil/vigil.yaml"]
