#!/usr/bin/env bash
# Runs the redis example's tour for real: starts a redis-server of its own on a free loopback
# port, runs `cargo run --example redis --features redis -- --check` against it, and stops it.
# Used by .ci/run; needs redis-server (installed there when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT

# A port that nothing answers on may still be taken (the local end of an outgoing connection):
# the server is started on it and waited for, and the next port is tried when it exits.
port=""
for candidate in $(seq 39200 39299); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    continue
  fi
  redis-server --port "$candidate" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize no >"$dir/redis.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      port=$candidate
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] && break
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
done
if [ -z "$port" ]; then
  echo "redis-server did not start on any port between 39200 and 39299; its last log:"
  cat "$dir/redis.log" 2>/dev/null || true
  exit 1
fi

cargo run --quiet --example redis --features redis -- \
  --redis "redis://127.0.0.1:$port/" --ports 0,0 --check
echo "redis example tour passed"
