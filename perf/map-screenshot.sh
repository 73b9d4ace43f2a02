#!/usr/bin/env bash
# A PNG of a running node's live map, taken by headless Chromium through chromedriver
# (Debian: apt-get install chromium chromium-driver) after the page has drawn live frames.
#
#   perf/map-screenshot.sh http://127.0.0.1:7100/map OUT.png [SECONDS] [WIDTHxHEIGHT]
#
# `meridian demo` prints its map's URL at start. Needs curl and python3 (JSON).
set -euo pipefail
url=${1:?usage: perf/map-screenshot.sh URL OUT.png [SECONDS] [WIDTHxHEIGHT]}
out=${2:?usage: perf/map-screenshot.sh URL OUT.png [SECONDS] [WIDTHxHEIGHT]}
wait_seconds=${3:-4}
size=${4:-1280x800}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chromedriver --port="$port" >/dev/null 2>&1 &
driver=$!
trap 'kill $driver 2>/dev/null || true' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 100); do
    curl -s "$base/status" >/dev/null && break
    sleep 0.1
done

json() { python3 -c "import json,sys; v=json.load(sys.stdin)['value']; print($1)"; }
caps=$(
    cat <<EOF
{"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
  "binary": "/usr/bin/chromium",
  "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--window-size=${size/x/,}"]}}}}
EOF
)
session=$(curl -s -X POST -H 'Content-Type: application/json' -d "$caps" "$base/session" | json "v['sessionId']")
curl -s -X POST -H 'Content-Type: application/json' -d "{\"url\": \"$url\"}" "$base/session/$session/url" >/dev/null
sleep "$wait_seconds"
drawn=$(curl -s -X POST -H 'Content-Type: application/json' \
    -d '{"script": "return JSON.stringify(window.meridian)", "args": []}' \
    "$base/session/$session/execute/sync" | json "v")
curl -s "$base/session/$session/screenshot" | json "v" | base64 -d >"$out"
curl -s -X DELETE "$base/session/$session" >/dev/null
echo "wrote $out; the page drew: $drawn"
