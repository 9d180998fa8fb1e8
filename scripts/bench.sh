#!/usr/bin/env bash
# Runs every benchmark scenario and writes BENCHMARKS.md at the repository root.
#
# Installs nginx when it is missing (apt-get, so run as root on Debian or Ubuntu),
# builds both binaries in release mode, then runs patchbay-bench. Extra arguments go to
# patchbay-bench, for example `scripts/bench.sh --only overhead --runs 3`.
# Everything listens on 127.0.0.1 only. A full run takes about 20 minutes, most of it
# the Gmail sync at the quota limit (10,000 messages at about 48 per second, three times).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "nginx is missing; installing it" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx
fi

cargo build --release --bins

# The refresh storm keeps about 2,000 sockets open at once.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
    ulimit -n 8192 2>/dev/null || true
fi

exec target/release/patchbay-bench "$@"
