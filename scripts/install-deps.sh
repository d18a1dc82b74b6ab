#!/usr/bin/env bash
# Install the Debian 12 packages mediad needs to build, run and test.
# Idempotent: when every package is already installed it returns in well
# under a second without touching apt. `--bench` adds the benchmark tools.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libsystemd-dev
  libxxhash-dev libsodium-dev
  libspng-dev libturbojpeg0-dev libjpeg62-turbo-dev
  libsndfile1-dev libsoxr-dev
  libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us flite1-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libblis-dev
  libcmocka-dev
  python3 python3-pytest python3-yaml systemd
  prometheus
  clang libclang-rt-14-dev
  valgrind
)
BENCH_PKGS=(wrk nginx-light hyperfine)

if [[ "${1:-}" == "--bench" ]]; then
  PKGS+=("${BENCH_PKGS[@]}")
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The official clients the black-box tests drive (npm, versions pinned in
# tests/clients/package-lock.json; never used by the server itself).
npm_clients() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/clients"
  if [[ ! -f "$dir/node_modules/.package-lock.json" ||
        "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    command -v npm >/dev/null || { echo "install-deps: npm is needed for tests/clients" >&2; exit 1; }
    echo "install-deps: npm ci in tests/clients" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [[ ${#missing[@]} -eq 0 ]]; then
  npm_clients
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/update-success-stamp
lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -n1)
if [[ -z "$lists" ]]; then
  $SUDO apt-get update -q
fi
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
npm_clients
