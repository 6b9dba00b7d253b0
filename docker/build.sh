#!/usr/bin/env bash
# Build swiftkit's CPU image: docker/build.sh [TAG]   (default tag: swiftkit:cpu)
#
# 1. The base: python:3.11-slim if it is here or can be pulled; else a Debian bookworm base made
#    with debootstrap and `docker import` (needs root and debootstrap), kept under its own tag so
#    the next build reuses it.
# 2. The wheelhouse: torch's CPU build and every dependency of swiftkit as wheels, made on this host
#    with its pip (which knows where the CPU torch wheel lies), kept in a cache keyed by the
#    dependencies, and linked into build/docker-wheels/ for the build context.
# 3. docker build with docker/Dockerfile: no step of it asks a package index.
#
# Settings (environment): SWIFTKIT_DOCKER_BASE (python:3.11-slim), SWIFTKIT_TORCH (torch==2.13.0),
# SWIFTKIT_DOCKER_CACHE (~/.cache/swiftkit-docker), DEBIAN_MIRROR (http://deb.debian.org/debian),
# PYTHON (python3: must be the base's Python minor version), DOCKER_BUILD_ARGS (extra arguments).
set -euo pipefail

TAG=${1:-swiftkit:cpu}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
TORCH=${SWIFTKIT_TORCH:-torch==2.13.0}
INIT=dumb-init==1.2.5.post1  # PID 1 in the container: passes signals on, reaps orphans
BASE=${SWIFTKIT_DOCKER_BASE:-python:3.11-slim}
DEBIAN_BASE=swiftkit-base:bookworm-python3
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SWIFTKIT_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swiftkit-docker}

say() { echo "build.sh: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

make_debian_base() {
    command -v debootstrap >/dev/null || { say "no base image and no debootstrap: apt-get install debootstrap"; exit 1; }
    [ "$(id -u)" = 0 ] || { say "making the Debian base needs root (debootstrap)"; exit 1; }
    local rootfs
    rootfs=$(mktemp -d)
    say "making $DEBIAN_BASE with debootstrap from $DEBIAN_MIRROR (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["python3"]' \
        -m "Debian bookworm minbase with python3, venv, pip, ca-certificates" - "$DEBIAN_BASE" >/dev/null
    rm -rf "$rootfs"
}

pick_base() {
    if have_image "$BASE" || timeout 120 docker pull -q "$BASE" >/dev/null 2>&1; then
        echo "$BASE"
        return
    fi
    say "cannot pull $BASE: using $DEBIAN_BASE"
    have_image "$DEBIAN_BASE" || make_debian_base
    echo "$DEBIAN_BASE"
}

# The wheelhouse's key: the dependencies, torch, the init and the Python/platform, not the rest of
# pyproject.toml (a new version or description reuses the wheelhouse, and so the dependency layer).
wheelhouse_key() {
    "$PYTHON" - "$ROOT/pyproject.toml" "$TORCH" "$INIT" <<'EOF'
import hashlib, sys, sysconfig, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
text = "\n".join(sorted(deps) + sys.argv[2:] + [sysconfig.get_platform(), "%d.%d" % sys.version_info[:2]])
print(hashlib.sha256(text.encode()).hexdigest()[:16])
EOF
}

make_wheelhouse() {
    local dir=$1 tmp=$1.tmp
    say "making the wheelhouse $dir"
    rm -rf "$tmp"
    "$PYTHON" -m pip wheel -q --disable-pip-version-check -w "$tmp" "$TORCH" "$INIT" "$ROOT" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    rm -f "$tmp"/swiftkit-*.whl  # swiftkit itself is built in the image, from the build context
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp/build" "setuptools>=68" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    mv "$tmp" "$dir"
}

command -v docker >/dev/null || { say "docker is not installed"; exit 1; }
docker info >/dev/null 2>&1 || { say "the docker daemon does not answer (start dockerd)"; exit 1; }

base=$(pick_base)
want=$(docker run --rm --network none --entrypoint python3 "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$want" = "$have" ] || { say "$base has Python $want but $PYTHON is $have: set PYTHON to a python$want"; exit 1; }

mkdir -p "$CACHE"
wheels="$CACHE/wheels-$(wheelhouse_key)"
[ -d "$wheels" ] || make_wheelhouse "$wheels"
rm -rf "$ROOT/build/docker-wheels"
mkdir -p "$ROOT/build"
cp -al "$wheels" "$ROOT/build/docker-wheels" 2>/dev/null || cp -a "$wheels" "$ROOT/build/docker-wheels"

version=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
say "building $TAG on $base"
# shellcheck disable=SC2086  # DOCKER_BUILD_ARGS is split on purpose
docker build -f "$ROOT/docker/Dockerfile" -t "$TAG" \
    --build-arg BASE="$base" --build-arg VERSION="$version" \
    --label org.opencontainers.image.revision="$revision" ${DOCKER_BUILD_ARGS:-} "$ROOT"
