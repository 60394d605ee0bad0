# syntax=docker/dockerfile:1
#
# assistantd as a container: a static Go binary (modernc SQLite is pure Go,
# so CGO is off) on Debian slim with the code_interpreter sandbox's packages,
# running as a non-root user with its data directory as a volume.
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

# 3. The runtime: Debian slim, for the code_interpreter sandbox: bubblewrap
#    and Debian's Python with numpy, pandas, matplotlib, scipy and
#    scikit-learn (distroless cannot hold them); poppler-utils for
#    pdftotext, which reads PDFs for file_search. CA certificates are for
#    calls to an https upstream.
#
#    bubblewrap creates user, mount, PID and network namespaces and mounts
#    /proc inside the sandbox, which Docker's default seccomp and AppArmor
#    profiles and its masked /proc paths forbid. Run the container with
#
#      docker run --security-opt seccomp=unconfined \
#                 --security-opt apparmor=unconfined \
#                 --security-opt systempaths=unconfined \
#                 -p 8080:8080 -v assistantd-data:/data assistantd
#
#    (or a seccomp profile allowing unshare, clone with namespace flags,
#    mount, umount2 and pivot_root). Without them code_interpreter calls
#    answer with an error saying the sandbox could not start; the rest of
#    the server works.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates bubblewrap poppler-utils python3 python3-numpy python3-pandas python3-matplotlib python3-scipy python3-sklearn \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent nonroot
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
