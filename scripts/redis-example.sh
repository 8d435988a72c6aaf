#!/usr/bin/env bash
# Runs the redis example's tour for real: starts a redis-server of its own on a free loopback
# port, runs `cargo run --example redis --features redis -- --check` against it, and stops it.
# Used by .ci/run; needs redis-server (installed there when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

port=""
for candidate in $(seq 39200 39299); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || { echo "no free port between 39200 and 39299"; exit 1; }

dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize no >"$dir/redis.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

cargo run --quiet --example redis --features redis -- \
  --redis "redis://127.0.0.1:$port/" --ports 0,0 --check
echo "redis example tour passed"
