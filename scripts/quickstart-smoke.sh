#!/usr/bin/env bash
# Runs the quickstart binary for real: serves on loopback, answers its tour (the layer counts
# usage: a create that passes, the 403 at the limit, a delete that gives one back, a create that
# passes again, an add-on that raises a limit; metered plans: an image that costs 5 credits, a
# streamed chat that counts what it reports, a pool's 403, a top-up spent after the allowance,
# the entitlements and RateLimit fields of the pool; billing cycles: a quota that resets on the
# user's billing day, the usage alerts it raises at GET /alerts and on stdout, a soft limit's
# Plan-Overage, a rate's 429 with Retry-After), replays the curl commands it prints on a fresh
# server, serves a fixture of add-on grants (active, expired, not started, two units), refuses
# malformed fixtures with a non-zero exit, and, built with --features stripe, receives signed
# Stripe subscription events that move a user onto a plan and off it. Used by .ci/run; needs
# curl and openssl (installed if absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
if ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

cargo build --quiet --example quickstart
bin="${CARGO_TARGET_DIR:-target}/debug/examples/quickstart"
log=$(mktemp)
bad=$(mktemp --suffix=.json)
addons=$(mktemp --suffix=.json)
plain=$(mktemp --suffix=.json)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -f "$log" "$bad" "$addons" "$plain"' EXIT

free_addr() { # a loopback address with a port that nothing listens on right now
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print("127.0.0.1:%d" % s.getsockname()[1])'
}

start() { # [args...]: serves the default fixture (or what args say) on a free loopback port, sets
  # $addr, logs to $log; another port is tried when the one picked was taken in between
  local attempt pid
  for attempt in 1 2 3 4 5; do
    addr=$(free_addr)
    "$bin" --addr "$addr" "$@" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 50); do
      curl -s -o /dev/null "http://$addr/health" && break
      grep -q "Address already in use" "$log" && break
      sleep 0.1
    done
    grep -q "listening on http://$addr" "$log" && return 0
    kill "$pid" 2>/dev/null || true
  done
  echo "quickstart did not start:"
  cat "$log"
  exit 1
}

start

body=
check() { # expected-status method path [user]; leaves the response body in $body
  local got out
  out=$(mktemp)
  if [ "$2" = HEAD ]; then
    # A HEAD answer has headers only: curl waits for no body.
    got=$(curl -s -o "$out" -w '%{http_code}' --head -H "x-user: ${4:-}" "http://$addr$3") || true
  elif [ -n "${4:-}" ]; then
    got=$(curl -s -o "$out" -w '%{http_code}' -X "$2" -H "x-user: $4" -H 'content-type: application/json' -d '{}' "http://$addr$3") || true
  else
    got=$(curl -s -o "$out" -w '%{http_code}' -X "$2" "http://$addr$3") || true
  fi
  body=$(cat "$out")
  rm -f "$out"
  if [ "$got" != "$1" ]; then echo "FAIL: $2 $3 as ${4:-nobody}: expected $1, got $got: $body"; exit 1; fi
  echo "ok: $2 $3 as ${4:-nobody} -> $got"
}
expect_body() { # exact expected body of the last check
  if [ "$body" != "$1" ]; then echo "FAIL: expected the body $1, got $body"; exit 1; fi
  echo "ok: body $body"
}
at_limit='{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}'

check 201 POST /api/clients alice          # alice had 2 of 3: client 1, counted: 3
check 403 POST /api/clients alice          # at the limit
expect_body "$at_limit"
check 200 GET /api/clients alice
check 200 DELETE /api/clients/1 alice      # gives one back: 2
check 201 POST /api/clients alice          # passes again: 3
check 403 POST /api/clients alice
expect_body "$at_limit"
check 404 DELETE /api/clients/99 alice     # a failed delete gives nothing back
check 403 POST /api/clients alice
expect_body "$at_limit"
check 201 POST /api/clients bob
check 403 POST /api/clients carol
check 401 POST /api/clients
check 200 GET /health
check 201 POST /api/clients erin           # free's 3, +10 from her add-on: at 5 she may create
expect_decision() { # the decision the handler reports, as "limit usage"
  local limit usage
  limit=$(sed -n 's/.*"limit":\([0-9]*\).*/\1/p' <<<"$body")
  usage=$(sed -n 's/.*"usage":\([0-9]*\).*/\1/p' <<<"$body")
  if [ "$limit $usage" != "$1" ]; then echo "FAIL: expected limit and usage $1, got $body"; exit 1; fi
  echo "ok: limit and usage $1"
}
expect_decision "13 5"

# Metered plans: each plan has a monthly pool of `ai` credits (free 8, pro 1000); an image costs
# 5, a chat reserves 200 and counts the `units` its handler reports as the answer streams.
headers=
send() { # expected-status method path user [json-body]; leaves the body in $body, headers in $headers
  local got out hdr data=()
  out=$(mktemp)
  hdr=$(mktemp)
  if [ -n "${5:-}" ]; then data=(-H 'content-type: application/json' -d "$5"); fi
  got=$(curl -s -o "$out" -D "$hdr" -w '%{http_code}' -X "$2" -H "x-user: $4" "${data[@]}" \
    "http://$addr$3") || true
  body=$(cat "$out")
  headers=$(tr -d '\r' <"$hdr")
  rm -f "$out" "$hdr"
  if [ "$got" != "$1" ]; then echo "FAIL: $2 $3 as $4: expected $1, got $got: $body"; exit 1; fi
  echo "ok: $2 $3 as $4 ${5:-} -> $got"
}
expect_header() { # exact "name: value" line among the last response's headers
  grep -qixF "$1" <<<"$headers" || { echo "FAIL: no header \`$1\` in:"; echo "$headers"; exit 1; }
  echo "ok: header $1"
}
expect_in_body() { # a fragment of the last body
  grep -qF "$1" <<<"$body" || { echo "FAIL: the body has no $1: $body"; exit 1; }
  echo "ok: body has $1"
}
month_s=$(date -u +%Y-%m-01)
resets=$(( $(date -u -d "$month_s +1 month" +%s) * 1000 ))
month=$(( resets / 1000 - $(date -u -d "$month_s" +%s) ))
send 201 POST /api/images dave '{"prompt":"a red fox"}'
expect_header "ratelimit-policy: \"credits.ai\";q=1000;w=$month"
grep -qi '^ratelimit: "credits.ai";r=995;t=[0-9]*$' <<<"$headers" || { echo "FAIL: RateLimit r=995: $headers"; exit 1; }
echo 'ok: header ratelimit: "credits.ai";r=995;t=...'
send 201 POST /api/chat dave '{"prompt":"hi","units":120}'
expect_header "transfer-encoding: chunked"
expect_in_body '"reply":["Once upon","a time,","the end."],"reported":120}'
send 200 GET /entitlements dave
expect_in_body "\"credits\":[{\"pool\":\"ai\",\"max\":1000,\"used\":125,\"remaining\":875,\"per\":\"month\",\"resets\":$resets,\"grants\":[]}]"
send 201 POST /api/chat dave '{"prompt":"no units"}'
expect_in_body '"reported":null}'
send 400 POST /api/chat dave '{"units":"many"}'
expect_body '{"message":"`units` must be a non-negative integer, found \"many\"","reason":"bad_units"}'
send 200 GET /entitlements dave            # the estimate of 200 counted, the 400 nothing
expect_in_body '"used":325,"remaining":675'
send 201 POST /api/images alice '{}'
send 403 POST /api/images alice '{}'
expect_body "{\"reason\":\"credits\",\"plan\":\"free\",\"credits\":\"ai\",\"maximum\":8,\"usage\":5,\"cost\":5,\"resets\":$resets}"
send 201 POST /api/images grace '{}'       # 5 of her 8
send 201 POST /api/images grace '{}'       # 3 of her 8, 2 of her top-up
send 200 GET /entitlements grace
expect_in_body "\"credits\":[{\"pool\":\"ai\",\"max\":8,\"used\":8,\"remaining\":0,\"per\":\"month\",\"resets\":$resets,\"grants\":[{\"id\":\"topup-1\",\"remaining\":98,\"expires\":4102444800000}]}]"
send 201 POST /api/chat ivan '{"units":30}' # his add-on: 8 + 500
expect_header "ratelimit-policy: \"credits.ai\";q=508;w=$month"

# Billing cycles: heidi (business) makes 2 reports a month counted from her billing day, the 15th at
# 09:30 UTC (her record's cycle_anchor), then 1 more flagged as overage; one export a minute.
cycle_end=$(( $(date -u -d "$(date -u +%Y-%m-15)" +%s) + 34200 ))
if [ "$cycle_end" -le "$(date -u +%s)" ]; then
  cycle_end=$(( $(date -u -d "$(date -u +%Y-%m-15) +1 month" +%s) + 34200 ))
fi
cycle_start=$(( $(date -u -d "$(date -u -d "@$cycle_end" +%Y-%m-%d) -1 month" +%s) + 34200 ))
send 201 POST /api/reports heidi '{}'
expect_header "ratelimit-policy: \"reports.create\";q=2;w=$(( cycle_end - cycle_start ))"
t=$(sed -n 's/^ratelimit: "reports.create";r=1;t=\([0-9]*\)$/\1/Ip' <<<"$headers")
left=$(( cycle_end - $(date -u +%s) ))
if [ -z "$t" ] || [ "$t" -gt $(( left + 1 )) ] || [ "$t" -lt $(( left - 5 )) ]; then
  echo "FAIL: RateLimit r=1 with t=$left s to the 15th expected: $headers"; exit 1
fi
echo "ok: header ratelimit: \"reports.create\";r=1;t=$t (the billing day, not the 1st)"
send 201 POST /api/reports heidi '{}'      # 2 of 2: 80% and 100%, two alerts
# The alerts are sent just after the response: ask for up to 5 s.
alert() { # threshold: heidi's alert on reports as GET /alerts lists it
  echo "{\"user\":\"heidi\",\"plan\":\"business\",\"resource\":\"reports\",\"action\":\"create\",\"threshold\":$1,\"used\":2,\"max\":2,\"period\":\"m${cycle_start}000\"}"
}
for _ in $(seq 1 50); do
  send 200 GET /alerts heidi
  grep -qF "$(alert 100)" <<<"$body" && break
  sleep 0.1
done
expect_in_body "$(alert 80),$(alert 100)]"
printed="billing month $(date -u -d "@$cycle_start" '+%Y-%m-%d %H:%M') to $(date -u -d "@$cycle_end" '+%Y-%m-%d %H:%M') UTC"
for threshold in 80 100; do
  line="alert: heidi reached $threshold% of reports.create (plan business): 2 of 2 used, $printed"
  grep -qxF "$line" "$log" || { echo "FAIL: the server did not print \`$line\`:"; cat "$log"; exit 1; }
  echo "ok: printed $line"
done
send 201 POST /api/reports heidi '{}'      # past 2, within the overage of 1
expect_header "plan-overage: reports.create=1"
send 403 POST /api/reports heidi '{}'
expect_body "{\"reason\":\"subscription\",\"plan\":\"business\",\"item\":\"reports\",\"action\":\"create\",\"maximum\":2,\"usage\":3,\"resets\":${cycle_end}000}"
send 201 POST /api/exports heidi '{}'
expect_header 'ratelimit-policy: "exports.create.rate";q=1;w=60'
expect_header 'ratelimit: "exports.create.rate";r=0;t=60'
send 429 POST /api/exports heidi '{}'      # within the minute
wait_ms=$(sed -n 's/^{"reason":"rate_limited","plan":"business","item":"exports","action":"create","maximum":1,"per":"minute","retry_after_ms":\([0-9]*\)}$/\1/p' <<<"$body")
if [ -z "$wait_ms" ] || [ "$wait_ms" -gt 60000 ] || [ "$wait_ms" -lt 50000 ]; then
  echo "FAIL: a rate_limited body with retry_after_ms under a minute expected: $body"; exit 1
fi
echo "ok: body $body"
expect_header "retry-after: $(( (wait_ms + 999) / 1000 ))"

# The printed tour, replayed as printed on a server that has just started.
start
grep -qF "curl -i -X DELETE -H 'x-user: alice' http://$addr/api/clients/1" "$log" \
  || { echo "FAIL: the printed tour has no delete of client 1:"; cat "$log"; exit 1; }
steps=0
expected=
while IFS= read -r line; do
  if [[ "$line" =~ ^[0-9]+\.\ .*\(expect\ ([0-9]{3})\ [^\)]*\)$ ]]; then
    expected="${BASH_REMATCH[1]}"
  elif [[ "$line" == "   curl -i "* ]]; then
    [ -n "$expected" ] || { echo "FAIL: a printed command without an expected status: $line"; exit 1; }
    got=$(eval "curl -s -o /dev/null -w '%{http_code}' ${line#   curl -i }") || true
    if [ "$got" != "$expected" ]; then echo "FAIL: printed step $((steps + 1)): expected $expected, got $got: $line"; exit 1; fi
    steps=$((steps + 1))
    expected=
  fi
done <"$log"
if [ "$steps" -lt 5 ]; then echo "FAIL: only $steps printed steps found:"; cat "$log"; exit 1; fi
echo "ok: the $steps printed tour commands answer as printed"

# Add-on grants on free (3 clients, "+10 clients" per unit), served by the binary over loopback.
cat >"$addons" <<'JSON'
{
  "config": { "base": "/api" },
  "plans": {
    "plans": [{ "name": "free", "limits": { "clients": 3 } }],
    "addons": [{ "name": "more-clients", "limits": { "clients": 10 } }]
  },
  "users": {
    "erin": { "plan": "free", "usage": { "clients": 5 }, "addons": [{ "name": "more-clients" }] },
    "frank": { "plan": "free", "usage": { "clients": 3 },
               "addons": [{ "name": "more-clients", "starts": 1672531200000, "expires": 1704067200000 }] },
    "gina": { "plan": "free", "usage": { "clients": 3 },
              "addons": [{ "name": "more-clients", "starts": 4102444800000 }] },
    "hank": { "plan": "free", "usage": { "clients": 22 },
              "addons": [{ "name": "more-clients", "quantity": 2 }] }
  }
}
JSON
start --fixture "$addons"
limit_body() { # maximum: free's denial at the limit
  echo "{\"reason\":\"subscription\",\"plan\":\"free\",\"item\":\"clients\",\"action\":\"create\",\"maximum\":$1,\"usage\":$1}"
}
check 201 POST /api/clients erin           # an active add-on: at 5 of 13
expect_decision "13 5"
check 403 POST /api/clients frank          # expired add-on: at 3 of 3
expect_body "$(limit_body 3)"
check 403 POST /api/clients gina           # not started yet: at 3 of 3
expect_body "$(limit_body 3)"
check 201 POST /api/clients hank           # two units: at 22 of 23
expect_decision "23 22"
check 403 POST /api/clients hank           # at 23 of 23
expect_body "$(limit_body 23)"

# A plain count is the usage of every action: each of six users with 5 projects on a plan that
# allows 1 of each item action tries them in a different order (the list first, then each item
# action, rotated); every one answers 403 with usage 5, whichever counters exist already.
cat >"$plain" <<'JSON'
{
  "config": { "base": "/api" },
  "plans": {
    "plans": [{ "name": "basic", "limits": {
      "projects": { "index": 1, "show": 1, "create": 10, "update": 1, "patch": 1, "delete": 1 } } }]
  },
  "users": {
    "u0": { "plan": "basic", "usage": { "projects": 5 } },
    "u1": { "plan": "basic", "usage": { "projects": 5 } },
    "u2": { "plan": "basic", "usage": { "projects": 5 } },
    "u3": { "plan": "basic", "usage": { "projects": 5 } },
    "u4": { "plan": "basic", "usage": { "projects": 5 } },
    "u5": { "plan": "basic", "usage": { "projects": 5 } }
  }
}
JSON
start --fixture "$plain"
item_actions=("GET show" "HEAD show" "PUT update" "PATCH patch" "DELETE delete")
for user in 0 1 2 3 4 5; do
  check 403 GET /api/projects "u$user"
  expect_body '{"reason":"subscription","plan":"basic","item":"projects","action":"index","maximum":1,"usage":5}'
  for i in 0 1 2 3 4; do
    step=${item_actions[$(((i + user) % 5))]}
    method=${step% *}
    action=${step#* }
    check 403 "$method" /api/projects/1 "u$user"
    # A HEAD answer has no body to read; its status is the check.
    if [ "$method" != HEAD ]; then
      expect_body "{\"reason\":\"subscription\",\"plan\":\"basic\",\"item\":\"projects\",\"action\":\"$action\",\"maximum\":1,\"usage\":5}"
    fi
  done
done

echo '{"plans":[{"name":"free","clients":-1}]}' >"$bad"
set +e
"$bin" --fixture "$bad" >/dev/null 2>"$log"
code=$?
set -e
if [ "$code" -eq 0 ] || ! grep -q "clients" "$log"; then
  echo "FAIL: a malformed fixture should exit non-zero naming the bad value (exit $code):"; cat "$log"; exit 1
fi
echo "ok: malformed fixture refused (exit $code): $(head -n1 "$log")"

echo '{"plans":{"plans":[{"name":"free","clients":3}]},"users":{"erin":{"plan":"free","addons":[{"name":"more-clients"}]}}}' >"$bad"
set +e
"$bin" --fixture "$bad" >/dev/null 2>"$log"
code=$?
set -e
if [ "$code" -eq 0 ] || ! grep -q 'addons\[0\].name' "$log"; then
  echo "FAIL: a fixture granting an unknown add-on should exit non-zero naming it (exit $code):"; cat "$log"; exit 1
fi
echo "ok: unknown add-on refused (exit $code): $(head -n1 "$log")"
# Stripe: the binary built with --features stripe receives signed subscription events at
# POST /webhooks/stripe when STRIPE_WEBHOOK_SECRET is set (signed here with openssl, as Stripe
# signs: the hex HMAC-SHA256 of "<t>.<body>"), mapping `pro_monthly` to pro by the fixture.
cargo build --quiet --example quickstart --features stripe
now=$(date +%s)
event() { # id type status: a subscription event for carol, in Stripe's shape
  printf '{"id":"%s","object":"event","type":"customer.subscription.%s","created":%s,"data":{"object":{"id":"sub_smoke","object":"subscription","status":"%s","customer":"cus_smoke","metadata":{"user_id":"carol"},"items":{"object":"list","data":[{"price":{"id":"price_smoke","lookup_key":"pro_monthly"},"quantity":1,"current_period_start":%s,"current_period_end":%s}]}}}}' \
    "$1" "$2" "$now" "$3" "$now" "$((now + 30 * 86400))"
}
deliver() { # expected-status body secret; leaves the answer in $body
  local got out sig
  sig=$(printf '%s.%s' "$now" "$2" | openssl dgst -sha256 -hmac "$3" | awk '{print $NF}')
  out=$(mktemp)
  got=$(curl -s -o "$out" -w '%{http_code}' -X POST -H "stripe-signature: t=$now,v1=$sig" \
    -H 'content-type: application/json' -d "$2" "http://$addr/webhooks/stripe") || true
  body=$(cat "$out")
  rm -f "$out"
  if [ "$got" != "$1" ]; then echo "FAIL: Stripe event: expected $1, got $got: $body"; exit 1; fi
  echo "ok: Stripe event -> $got $body"
}
secret=whsec_smoke_test
STRIPE_WEBHOOK_SECRET="$secret" start
grep -q "Stripe webhooks: POST http://$addr/webhooks/stripe" "$log" \
  || { echo "FAIL: the Stripe route is not announced:"; cat "$log"; exit 1; }
check 403 POST /api/clients carol          # her regular plan expired
deliver 200 "$(event evt_smoke_1 created active)" "$secret"
expect_body '{"status":"applied"}'
check 201 POST /api/clients carol          # on pro: 30 clients
expect_decision "30 0"
check 200 GET /entitlements carol
grep -q '"plan":"pro"' <<<"$body" || { echo "FAIL: entitlements without pro: $body"; exit 1; }
echo "ok: entitlements show pro"
deliver 401 "$(event evt_smoke_2 deleted canceled)" whsec_forged
expect_body '{"error":"bad_signature"}'
deliver 200 "$(event evt_smoke_1 created active)" "$secret"
expect_body '{"status":"duplicate"}'
deliver 200 "$(event evt_smoke_3 deleted canceled)" "$secret"
expect_body '{"status":"applied"}'
check 403 POST /api/clients carol          # no plan any more
expect_body '{"reason":"subscription","plan":null,"item":"clients","action":"create"}'

# Without the secret, the same binary mounts no Stripe route: the event changes nothing.
start
deliver 200 "$(event evt_smoke_4 created active)" "$secret"
expect_body '{"ok":true}'
check 403 POST /api/clients carol
echo "quickstart smoke test passed"
