#!/usr/bin/env bash
# Runs the quickstart binary for real: serves on loopback, answers part of its printed tour, and
# refuses a malformed fixture with a non-zero exit. Used by .ci/run; needs curl (installed if absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi

cargo build --quiet --example quickstart
bin="${CARGO_TARGET_DIR:-target}/debug/examples/quickstart"
addr="127.0.0.1:${QUICKSTART_PORT:-39117}"
log=$(mktemp)
bad=$(mktemp --suffix=.json)
"$bin" --addr "$addr" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log" "$bad"' EXIT

for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://$addr/health" && break
  sleep 0.1
done
grep -q "listening on http://$addr" "$log" || { echo "quickstart did not start:"; cat "$log"; exit 1; }

check() { # expected-status method path [user]
  local got
  if [ -n "${4:-}" ]; then
    got=$(curl -s -o /dev/null -w '%{http_code}' -X "$2" -H "x-user: $4" -H 'content-type: application/json' -d '{}' "http://$addr$3")
  else
    got=$(curl -s -o /dev/null -w '%{http_code}' -X "$2" "http://$addr$3")
  fi
  if [ "$got" != "$1" ]; then echo "FAIL: $2 $3 as ${4:-nobody}: expected $1, got $got"; exit 1; fi
  echo "ok: $2 $3 as ${4:-nobody} -> $got"
}
check 201 POST /api/clients alice
check 403 POST /api/clients alice
check 201 POST /api/clients bob
check 403 POST /api/clients carol
check 401 POST /api/clients
check 200 GET /health

echo '{"plans":[{"name":"free","clients":-1}]}' >"$bad"
set +e
"$bin" --fixture "$bad" >/dev/null 2>"$log"
code=$?
set -e
if [ "$code" -eq 0 ] || ! grep -q "clients" "$log"; then
  echo "FAIL: a malformed fixture should exit non-zero naming the bad value (exit $code):"; cat "$log"; exit 1
fi
echo "ok: malformed fixture refused (exit $code): $(head -n1 "$log")"
echo "quickstart smoke test passed"
