#!/usr/bin/env bash
# Bring up what reprise needs on a Debian-like host, idempotently:
#   1. Debian's docker.io, docker-registry and debootstrap (installed only when missing);
#   2. a Docker engine (started only when none answers, DOCKER_HOST included);
#   3. a registry on 127.0.0.1:5000 (started only when none answers there);
#   4. the local base image (Debian bookworm + Python 3, debootstrap + docker import),
#      pushed to that registry once.
# The last line printed is REPRISE_BASE_IMAGE=127.0.0.1:5000/reprise/base@sha256:..., so
#   eval "$(make -s engine | tail -n 1)"
# exports it. Progress goes to stderr. A second call with everything up takes well under 2 s.
set -euo pipefail

REGISTRY_ADDR="${REPRISE_LOCAL_REGISTRY:-127.0.0.1:5000}"
STATE_DIR="${REPRISE_ENGINE_STATE:-/var/lib/reprise-engine}"
BASE_REPO="${REPRISE_LOCAL_BASE_REPO:-reprise/base}"
BASE_TAG="${REPRISE_LOCAL_BASE_TAG:-bookworm-python3}"
SUITE="${REPRISE_BASE_SUITE:-bookworm}"
MANIFEST_ACCEPT='application/vnd.docker.distribution.manifest.v2+json'

say() { printf 'engine: %s\n' "$*" >&2; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_answers() { curl -fsS -m 2 "http://${REGISTRY_ADDR}/v2/" >/dev/null 2>&1; }
registry_digest() {
  curl -fsS -m 5 -I -H "Accept: ${MANIFEST_ACCEPT}" \
    "http://${REGISTRY_ADDR}/v2/${BASE_REPO}/manifests/${BASE_TAG}" 2>/dev/null \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}' || true
}

need_root() {
  [ "$(id -u)" = 0 ] || die "$1
Run this script as root (sudo make engine), or install and start it yourself:
  - a Docker engine (Debian: apt-get install docker.io; then dockerd), reachable by 'docker version' or DOCKER_HOST;
  - a registry on ${REGISTRY_ADDR} (Debian: apt-get install docker-registry);
  - debootstrap (apt-get install debootstrap) to build the local base image."
}

install_missing() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v git >/dev/null || missing+=(git)
  command -v zstd >/dev/null || missing+=(zstd)
  if ! engine_answers; then
    command -v dockerd >/dev/null || missing+=(docker.io)
  fi
  command -v docker >/dev/null || missing+=(docker.io)
  if ! registry_answers; then
    command -v docker-registry >/dev/null || missing+=(docker-registry)
  fi
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  need_root "missing: ${missing[*]}"
  command -v apt-get >/dev/null || die "missing: ${missing[*]}, and no apt-get on this host to install them. Install them with your package manager."
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

start_engine() {
  if engine_answers; then return 0; fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=${DOCKER_HOST} is set but no engine answers there. Start that engine, or unset DOCKER_HOST to let this script start a local one."
  fi
  need_root "no Docker engine answers"
  mkdir -p "$STATE_DIR"
  say "starting dockerd (log: ${STATE_DIR}/dockerd.log)"
  # No default bridge: builds use the host network, runs use none. Nothing is sent to a bridge.
  setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    >"${STATE_DIR}/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    if engine_answers; then say "dockerd is up"; return 0; fi
    sleep 0.5
  done
  tail -n 20 "${STATE_DIR}/dockerd.log" >&2 || true
  die "dockerd did not answer within 60 s; its log is above (${STATE_DIR}/dockerd.log)."
}

start_registry() {
  if registry_answers; then return 0; fi
  need_root "no registry answers on ${REGISTRY_ADDR}"
  command -v docker-registry >/dev/null || die "docker-registry is not installed (apt-get install docker-registry)."
  mkdir -p "${STATE_DIR}/registry"
  cat > "${STATE_DIR}/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${STATE_DIR}/registry
  delete:
    enabled: true
http:
  addr: ${REGISTRY_ADDR}
YML
  say "starting docker-registry on ${REGISTRY_ADDR} (storage: ${STATE_DIR}/registry)"
  setsid nohup docker-registry serve "${STATE_DIR}/registry.yml" \
    >"${STATE_DIR}/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    if registry_answers; then return 0; fi
    sleep 0.5
  done
  tail -n 20 "${STATE_DIR}/registry.log" >&2 || true
  die "the registry did not answer on ${REGISTRY_ADDR} within 30 s (log: ${STATE_DIR}/registry.log)."
}

debian_mirror() {
  if [ -n "${REPRISE_DEBIAN_MIRROR:-}" ]; then echo "$REPRISE_DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -rhE '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_base_image() {
  local ref="${REGISTRY_ADDR}/${BASE_REPO}:${BASE_TAG}"
  if ! docker image inspect "$ref" >/dev/null 2>&1; then
    need_root "the base image ${ref} must be built with debootstrap"
    command -v debootstrap >/dev/null || { install_pkg debootstrap; }
    BASE_ROOT=$(mktemp -d /var/tmp/reprise-base.XXXXXX)
    trap 'rm -rf "${BASE_ROOT:-}"' EXIT
    local root="$BASE_ROOT"
    say "building the base image ${ref} with debootstrap (${SUITE}, python3; about a minute)"
    debootstrap --variant=minbase --include=python3,ca-certificates \
      "$SUITE" "$root" "$(debian_mirror)" >"${STATE_DIR}/debootstrap.log" 2>&1 \
      || { tail -n 20 "${STATE_DIR}/debootstrap.log" >&2; die "debootstrap failed (log: ${STATE_DIR}/debootstrap.log)"; }
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    say "importing into the engine"
    tar --numeric-owner --sort=name --mtime='@0' -C "$root" -c . \
      | docker import \
          --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          --change 'ENV LANG=C.UTF-8' \
          --change 'CMD ["/bin/bash"]' - "$ref" >/dev/null
  fi
  say "pushing ${ref}"
  docker push "$ref" >/dev/null
}

install_pkg() {
  command -v apt-get >/dev/null || die "install $1 with your package manager"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1" >&2
}

main() {
  install_missing
  start_engine
  start_registry
  local digest; digest=$(registry_digest)
  if [ -z "$digest" ]; then
    build_base_image
    digest=$(registry_digest)
    [ -n "$digest" ] || die "the base image was pushed but ${REGISTRY_ADDR} reports no digest for ${BASE_REPO}:${BASE_TAG}"
  fi
  echo "REPRISE_BASE_IMAGE=${REGISTRY_ADDR}/${BASE_REPO}@${digest}"
}

main "$@"
