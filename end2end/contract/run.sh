#!/usr/bin/env bash
# The API contract, against a live server: schemathesis generates requests (valid and invalid) for every operation of
# the server's own /api/openapi.json and fails on any 5xx, any status the document does not list, and any response
# whose headers, content type or body break the document. The management API's changes run last, on their own:
# they may disable the account the other operations use.
#
# Usage: run.sh <sm8-webhooks binary> [extra schemathesis options]
set -euo pipefail

BIN=$(realpath "${1:?usage: run.sh <sm8-webhooks binary> [schemathesis options]}")
shift
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
random_token() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }

export BIND="127.0.0.1:$PORT" PUBLIC_URL="$BASE" DATABASE_URL="sqlite://$WORK/sm8.db"
export ADMIN_TOKEN=$(random_token) JWT_SECRET=$(random_token) REALTIME_ANON_KEY=$(random_token)
RUST_LOG=warn NO_COLOR=1 "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
finish() {
  status=$?
  kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
}
trap finish EXIT

for _ in $(seq 1 100); do
  curl -fs "$BASE/healthz" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$BASE/healthz" >/dev/null || { echo "the server did not answer /healthz" >&2; exit 1; }

REALTIME_TOKEN=$("$BIN" token --role admin --ttl 1h)
# A portal session for the download: the cookie a portal link sets when it is opened.
PORTAL_LINK=$("$BIN" portal-link --company 11111111-2222-4333-8444-555555555555 --ttl 1h | grep -o 'http[^ ]*' | head -n 1)
PORTAL_SESSION=$(curl -fs -o /dev/null -c - "$PORTAL_LINK" | awk '$6 == "sm8_portal_session" { print $7 }')
[ -n "$PORTAL_SESSION" ] || { echo "opening the portal link $PORTAL_LINK set no session" >&2; exit 1; }
export REALTIME_TOKEN PORTAL_SESSION

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
run() {
  (cd "$HERE" && schemathesis run "$BASE/api/openapi.json" \
    --header "Authorization: Bearer $ADMIN_TOKEN" \
    --checks "$CHECKS" --seed 20261205 --generation-database none --no-color \
    --max-examples "${CONTRACT_EXAMPLES:-40}" "$@")
}
run --exclude-operation-id management_change "$@"
run --include-operation-id management_change "$@"
