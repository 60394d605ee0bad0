# syntax=docker/dockerfile:1
#
# assistantd as a container: a static Go binary (modernc SQLite is pure Go,
# so CGO is off) on a distroless base, running as a non-root user with its
# data directory as a volume.
#
#   docker build -t assistantd .
#   docker run -p 8080:8080 -v assistantd-data:/data assistantd
#
# On first start with no ASSISTANTD_API_KEY the server prints a generated key
# once (see `docker logs`).

ARG GO_VERSION=1.26.8
ARG NODE_VERSION=22

# 1. Front-end libraries, installed from the npm registry as pinned by
#    static/package-lock.json. npm's postinstall step copies their dist files
#    into static/vendor/, which the Go binary embeds.
FROM node:${NODE_VERSION}-slim AS assets
WORKDIR /src/static
COPY static/ ./
RUN npm ci --no-audit --no-fund

# 2. The binary.
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=assets /src/static/vendor/ ./static/vendor/
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/assistantd . \
    && /out/assistantd --help >/dev/null \
    && mkdir -p /out/data

# 3. The runtime: no shell, no package manager; CA certificates for calls to
#    an https upstream are included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/assistantd /assistantd
# The volume's mount point, owned by the non-root user so that a fresh named
# volume (initialised from this directory) is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV ASSISTANTD_DATA=/data \
    ASSISTANTD_ADDR=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/assistantd"]
