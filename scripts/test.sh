#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: `./scripts/test.sh`.
#
# Installs what the tests need when it is missing (redis-server, for the
# Redis stores' tests against a real server; PostgreSQL's server binaries
# and openssl, for the Postgres store's tests against a real server, some
# over TLS; promtool, for the example
# alert rules; python3, whose hmac signs the health check tests), then
# builds the examples with the default features, as `cargo run --example`
# does, runs every test, doc test and example build with all
# features, and builds the test-support crate's own targets (the
# benchmarks' baseline receiver).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it with apt-get (the Redis store's tests need it)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v postgres >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "PostgreSQL not found: installing it with apt-get (the Postgres store's tests need it)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  # The server binaries only: the tests start their own server (as the
  # postgres user the package creates, when they run as root).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl not found: installing it with apt-get (the Postgres TLS test makes its certificates with it)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package (the alert rules' tests need it)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found: installing it with apt-get (the health check's tests sign with Python's hmac)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 >/dev/null
fi

# The examples as a user builds them from a clone: `cargo run --example
# NAME`, without `--features` (the dev-dependency's features only).
cargo build --examples
cargo test --workspace --all-features --all-targets
cargo test --workspace --all-features --doc
