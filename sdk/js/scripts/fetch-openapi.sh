#!/bin/sh
# Refreshes sdk/js/openapi.json from the real server, then `npm run gen:api` regenerates
# src/generated/openapi.d.ts from it. Run from sdk/js (npm run fetch:api does).
#
#   export CARGO_TARGET_DIR=$HOME/.cache/keystead/target
#   cargo build -p keystead-server --bin keystead
#   $CARGO_TARGET_DIR/debug/keystead serve --data-dir $(mktemp -d) --listen 127.0.0.1:18080 &
#   curl -s http://127.0.0.1:18080/v1/openapi.json > openapi.json   # then stop the server
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keystead/target}"
PORT="${KEYSTEAD_OPENAPI_PORT:-18080}"
(cd ../.. && cargo build -p keystead-server --bin keystead)
DATA="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/keystead" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$DATA/serve.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
i=0
until curl -sf "http://127.0.0.1:$PORT/v1/openapi.json" -o "$DATA/openapi.json"; do
  i=$((i + 1))
  if [ "$i" -ge 100 ]; then echo "fetch-openapi: the server did not answer" >&2; cat "$DATA/serve.log" >&2; exit 1; fi
  sleep 0.2
done
# Pretty-printed, two spaces, so the committed snapshot diffs well.
node -e 'const fs=require("fs");fs.writeFileSync("openapi.json",JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1],"utf8")),null,2)+"\n")' "$DATA/openapi.json"
echo "fetch-openapi: wrote sdk/js/openapi.json; now run: npm run gen:api" >&2
