#!/usr/bin/env bash
# Build deploy/Dockerfile, as shipped, without a Docker engine or Docker Hub: buildah on a local base.
#
#   deploy/image.sh [build]        build localhost/ksa-auth:<version>, printing each phase and its time
#   deploy/image.sh podman ARGS    podman with the same private storage and configuration
#   deploy/image.sh clean          remove the storage (the next build starts cold)
#
# Root only (buildah --isolation chroot, overlay storage), with buildah, podman, runc and
# mmdebstrap installed (`make sysdeps`). Everything lives under .cache/containers: a second build
# reuses the base image and every unchanged layer, and takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${IMAGE_CACHE_DIR:-$ROOT/.cache/containers}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml")
IMAGE=localhost/ksa-auth:$VERSION
# Stands in for Docker Hub's python:3.11-slim: Debian bookworm's python3 is 3.11.
BASE=localhost/python:3.11-slim
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
# The CA bundle the host's pip trusts (a TLS-inspecting proxy's CA, if any, is in it).
CA_BUNDLE=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
# Run state belongs on /run (cleared at boot), one directory per cache.
RUNROOT=/run/ksa-auth-containers/$(printf '%s' "$CACHE" | cksum | cut -d' ' -f1)

say() { printf 'image: %s\n' "$*"; }
fail() { printf 'deploy/image.sh: %s\n' "$*" >&2; exit 1; }

# Run "$@" as one phase: its name first, then how long it took.
phase() {
    local name=$1 start=$EPOCHREALTIME
    shift
    say "$name ..."
    "$@"
    say "$name: done in $(elapsed "$start") s"
}

# Run "$@" with its output in $CACHE/<log>.log; on failure show the end of it.
logged() {
    local log=$CACHE/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        fail "$1 failed (its whole output: $log)"
    fi
}

# Replace $1 with stdin in one step: a podman started meanwhile (a container's cleanup, say)
# reads the old file or the new one, never a half-written one.
write_file() {
    cat >"$1.tmp"
    mv -f "$1.tmp" "$1"
}

elapsed() {
    local now=$EPOCHREALTIME
    awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

preflight() {
    local missing=()
    for tool in buildah podman runc mmdebstrap; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] || fail "missing ${missing[*]}: run \`make sysdeps\` (as root, with apt)"
    [ "$(id -u)" -eq 0 ] || fail "needs root (buildah --isolation chroot and overlay storage)"
    [ -r "$CA_BUNDLE" ] || fail "no CA bundle at $CA_BUNDLE (set PIP_CERT to the one pip trusts)"
}

# Private storage and configuration, so nothing of the machine's own podman setup is used or
# changed. Written on every call: the limits are read from this machine as it is now.
configure() {
    mkdir -p "$CACHE/storage" "$CACHE/build-home/.config/pip"
    write_file "$CACHE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$RUNROOT"
EOF
    local nofile nproc
    nofile=$(ulimit -Hn)
    # podman lowers its own RLIMIT_NPROC to 32768 when it starts, so a container cannot be
    # given more; without CAP_SYS_RESOURCE, podman's default (1048576) fails in setrlimit.
    nproc=$(ulimit -Hu)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
    [ "$nofile" != unlimited ] || nofile=1048576
    write_file "$CACHE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
# No bridge networks: they need iptables or nftables, which these machines lack.
netns = "host"

[engine]
# crun refuses a hybrid cgroup v1/v2 layout; runc runs on it.
runtime = "runc"
EOF
    # The build's HOME: pip reads ~/.config/pip/pip.conf. A bind mount over the existing /root
    # leaves nothing behind, where a mount on a new path (/etc/pip.conf) would leave an empty
    # file in the image.
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' |
        write_file "$CACHE/build-home/.config/pip/pip.conf"
    export CONTAINERS_STORAGE_CONF=$CACHE/storage.conf CONTAINERS_CONF=$CACHE/containers.conf
}

make_base() {
    local tarball=$CACHE/base.tar
    rm -f "$tarball"
    # Merged /usr by the hook, as Debian's own images have it, rather than the usrmerge package
    # (and the perl it needs); and, as the -slim images do, no documentation or translations.
    logged mmdebstrap mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" "$tarball" \
        "deb http://deb.debian.org/debian $SUITE main" \
        "deb http://deb.debian.org/debian $SUITE-updates main" \
        "deb http://deb.debian.org/debian-security $SUITE-security main"
    logged import podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$tarball" "$BASE"
    rm -f "$tarball"
}

build_image() {
    # The host's CA bundle replaces the base's for the RUN steps only (a bind mount over a file
    # the base already has); pip.conf comes with the build's HOME. Neither lands in a layer.
    logged build buildah bud --isolation chroot --network host --layers --pull=never \
        --file "$ROOT/deploy/Dockerfile" \
        --ignorefile "$ROOT/deploy/Dockerfile.dockerignore" \
        --build-arg "PYTHON_IMAGE=$BASE" \
        --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
        --volume "$CACHE/build-home:/root:ro" \
        --tag "$IMAGE" "$ROOT"
}

build() {
    local start=$EPOCHREALTIME
    preflight
    configure
    if podman image exists "$BASE"; then
        say "base image $BASE: cached"
    else
        phase "base image $BASE (mmdebstrap $SUITE, podman import)" make_base
    fi
    phase "image $IMAGE (buildah bud deploy/Dockerfile)" build_image
    local size
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    say "$IMAGE: $((size / 1000000)) MB, built in $(elapsed "$start") s"
}

clean() {
    if [ -d "$CACHE/storage" ] && command -v podman >/dev/null 2>&1; then
        configure
        # Only this private store: its containers (stopped first) and images, so no layer
        # stays mounted under the directory removed below.
        podman rm --all --force >/dev/null
        buildah rm --all >/dev/null
        podman rmi --all --force >/dev/null
    fi
    rm -rf "$CACHE" "$RUNROOT"
    say "removed $CACHE"
}

case ${1:-build} in
    build) build ;;
    podman) shift; preflight; configure; exec podman "$@" ;;
    clean) clean ;;
    *) fail "unknown command ${1}: use build, podman ARGS or clean" ;;
esac
