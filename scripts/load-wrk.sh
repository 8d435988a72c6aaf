#!/usr/bin/env bash
# The loopback load test with an external load generator: starts the servers of
# `benches/load.rs` (`cargo bench --bench load -- --serve`) and drives each with `wrk`
# (installed with apt-get when missing), the servers taking turns for several rounds, then
# prints each server's rate and its ratio to the bare application.
#
#   scripts/load-wrk.sh [rounds (5)] [seconds per run (3)] [connections (16)] [wrk threads (1)]
#
# LOAD_FEATURES (cargo features, such as `redis`) and LOAD_SERVERS (the bench's `--servers`,
# such as `redis+count,redis+lease`) choose the servers; LOAD_PIN=1 runs the servers on CPU 0
# and wrk on CPU 1 (with taskset), so that the two do not take turns on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-3}
connections=${3:-16}
threads=${4:-1}

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is missing: installing it with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y wrk >&2
  else
    sudo apt-get install -y wrk >&2
  fi
fi

features=()
[ -n "${LOAD_FEATURES:-}" ] && features=(--features "$LOAD_FEATURES")
serve=(--serve)
[ -n "${LOAD_SERVERS:-}" ] && serve+=(--servers "$LOAD_SERVERS")
server_cpu=()
client_cpu=()
if [ "${LOAD_PIN:-0}" = 1 ]; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi
cargo bench --bench load "${features[@]}" --no-run >&2
dir=$(mktemp -d)
# In a session of its own, so that stopping its process group stops the servers too (cargo
# does not pass a signal on to the bench binary it runs).
setsid "${server_cpu[@]}" cargo bench --bench load "${features[@]}" -- "${serve[@]}" >"$dir/servers" 2>"$dir/log" &
pid=$!
trap 'kill -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do
  grep -q '^ready$' "$dir/servers" && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
  sleep 0.1
done
mapfile -t names < <(awk '/^serving /{print $2}' "$dir/servers")
mapfile -t urls < <(awk '/^serving /{print $3}' "$dir/servers")
[ "${#names[@]}" -ge 1 ] || { echo "no server started" >&2; exit 1; }

# Every request is a governed, allowed POST /api/clients by one of the 1000 subscribers.
cat >"$dir/post.lua" <<'LUA'
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/api/clients", {["x-user"] = "u" .. (i % 1000), ["content-length"] = "0"}, nil)
end
-- wrk counts the responses that are not 2xx or 3xx: every one here should be a 201.
done = function(summary, latency, requests)
  io.write(string.format("non2xx %d\n", summary.errors.status))
end
LUA

echo "wrk: $threads thread(s), $connections connections, $seconds s per run, $rounds rounds, POST /api/clients (governed, allowed)"
declare -A total
for round in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((${#names[@]} - 1))); do
    index=$(( (round - 1 + k) % ${#names[@]} ))
    name=${names[$index]}
    out=$("${client_cpu[@]}" wrk -t "$threads" -c "$connections" -d "${seconds}s" -s "$dir/post.lua" "${urls[$index]}")
    rate=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
    bad=$(awk '/^non2xx /{print $2}' <<<"$out")
    if [ "${bad:-0}" != "0" ]; then
      echo "$name: $bad responses were not 2xx" >&2
      exit 1
    fi
    printf 'round %d %-12s %10.0f req/s\n' "$round" "$name" "$rate"
    echo "$round $name $rate" >>"$dir/rates"
  done
done
echo
echo "server         req/s   ratio to bare   median of the rounds' ratios"
awk '
  { rate[$2] += $3; n[$2]++; r[$1, $2] = $3; rounds[$1] = 1; names[$2] = 1 }
  END {
    for (name in names) {
      m = 0
      for (round in rounds) {
        x = r[round, name] / r[round, "bare"]
        # Insertion sort (plain awk has no sort).
        for (j = m; j > 0 && ratios[j] > x; j--) ratios[j + 1] = ratios[j]
        ratios[j + 1] = x
        m++
      }
      printf "%-12s %9.0f   %13.3f   %.3f\n", name, rate[name] / n[name],
        (rate[name] / n[name]) / (rate["bare"] / n["bare"]), ratios[int(m / 2) + 1]
    }
  }' "$dir/rates" | sort
