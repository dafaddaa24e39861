#!/usr/bin/env bash
# schemathesis (property-based, from the OpenAPI schema) against a running server's whole API.
#
#   bench/api_fuzz.sh [BASE_URL] [MAX_EXAMPLES]      # default http://127.0.0.1:8000, 50
#
# Creates an API key with every scope in the server's database (the same environment as the
# server: AUTOGLM_EMBEDDED_DB_NAME or DATABASE_URL), then runs every operation with valid and
# invalid requests, checking what the API promises: no 5xx, only documented status codes,
# content types, bodies and headers conforming to the schema. (Not "a valid request is never
# refused": a cursor is opaque and an id may name nothing, so schema-valid requests get 422 or
# 404 by design.) It writes and deletes data: run it against a scratch database.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BASE=${1:-http://127.0.0.1:8000}
EXAMPLES=${2:-50}
KEY=$("$PY" manage.py api_key create schemathesis --all-scopes --rate-limit 1000000 | tail -1)
exec "$(dirname "$PY")/schemathesis" run "$BASE/api/v1/openapi.json" \
  --url "$BASE" -H "Authorization: Bearer $KEY" --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "$EXAMPLES" --workers 1 --continue-on-failure
