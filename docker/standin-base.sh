#!/bin/sh
# Make a stand-in for the Dockerfile's base image from Debian's own packages, for machines
# that cannot pull the official python image (make image-check).
#
#   docker/standin-base.sh IMAGE_NAME
#
# The official python:3.11-slim-bookworm is Debian bookworm with CPython in /usr/local. The
# stand-in is bookworm's minimal system with bookworm's CPython 3.11 (python3, python3-venv,
# python3-pip), passwd and the CA certificates; `python` and `python3` linked into
# /usr/local/bin as the official image has them, and PEP 668's marker removed so that pip may
# install into the system the way it may in the official image. What the Dockerfile relies
# on (python -m pip, python -m venv, groupadd/useradd, apt-get) behaves the same.
#
# debootstrap takes minutes, so the root file system is kept as a tarball under
# QIWI_IMAGE_CACHE (default /var/cache/qiwi-gw), named after what goes into it: the next run
# only imports it. Podman's own storage keeps the imported image too.
set -eu

image="${1:?usage: standin-base.sh IMAGE_NAME}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=python3,python3-venv,python3-pip,passwd,ca-certificates
cache_dir="${QIWI_IMAGE_CACHE:-/var/cache/qiwi-gw}"
# The recipe's version: change it when this script changes what it builds.
recipe=1
key="$(printf '%s %s %s %s' "$recipe" "$suite" "$packages" "$(uname -m)" | sha256sum | cut -c1-12)"
tarball="$cache_dir/standin-$suite-$key.tar"

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
        echo "standin-base: debootstrap is missing (apt-get install debootstrap)" >&2
        exit 1
    }
    mkdir -p "$cache_dir"
    root="$(mktemp -d "$cache_dir/root.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    echo "standin-base: debootstrap $suite with $packages (a few minutes, once)" >&2
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2
        exit 1
    }
    rm -f "$root.log"
    # The same sources as the official image, so that apt-get in the Dockerfile gets updates.
    cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
    # The host's bundle: it trusts whatever the host trusts (a proxy's CA included).
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner --xattrs -C "$root" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
fi

podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$image" >/dev/null
echo "standin-base: $image from $tarball" >&2
