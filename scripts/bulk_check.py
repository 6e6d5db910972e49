"""scripts/bulk_check.py — POST /v1/jobs/bulk (JSON lines) against a running dreamd, run by scripts/api-check.sh.

schemathesis sends one generated row per upload (scripts/schemathesis_hooks.py); this sends what it cannot:
many rows, valid and invalid rows mixed, malformed lines, NUL and lone surrogates, bytes that are not UTF-8,
huge lines, too many rows, a body over DREAMD_BULK_MAX_BYTES, empty and blank bodies, wrong content types,
Idempotency-Key replays and conflicts, no key. Every answer must be 2xx or 4xx, never 5xx; every 4xx must
carry the JSON error body {"error": {"code", "message"}}; each case also checks its status and code.

Usage: API=http://127.0.0.1:8080 TOKEN=dmd_... BULK_MAX_BYTES=4194304 python3 scripts/bulk_check.py
Exits 1 naming each case that failed.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

API = os.environ["API"].rstrip("/")
TOKEN = os.environ["TOKEN"]
MAX_BYTES = int(os.environ.get("BULK_MAX_BYTES", str(64 << 20)))
NDJSON = "application/x-ndjson"

JOB = {"kind": "image_gen", "params": {"prompt": "a fox", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}
COMPLETION = {"kind": "completion", "params": {"model": "lucid-v1-medium", "input": "Once upon a time"}}

failures = []
cases = 0


def row(**changes):
    body = json.loads(json.dumps(JOB))
    body["params"].update(changes)
    return json.dumps(body)


def lines(*rows):
    return ("\n".join(rows) + "\n").encode()


def post(body, content_type=NDJSON, token=TOKEN, headers=None):
    request = urllib.request.Request(API + "/v1/jobs/bulk", data=body, method="POST")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    if token is not None:
        request.add_header("Authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def check(name, body, want_status, want_code=None, content_type=NDJSON, token=TOKEN, headers=None, then=None):
    """Sends one upload and checks the answer; `then(json)` checks more and returns a message on failure."""
    global cases
    cases += 1
    started = time.monotonic()
    try:
        status, response_headers, raw = post(body, content_type=content_type, token=token, headers=headers)
    except Exception as error:  # a dropped connection is a failure too
        failures.append(f"{name}: no answer ({error!r})")
        return None
    elapsed = time.monotonic() - started
    problems = []
    document = None
    try:
        document = json.loads(raw)
    except ValueError:
        problems.append(f"the body is not JSON: {raw[:200]!r}")
    if status >= 500:
        problems.append(f"server error {status}")
    if status != want_status:
        problems.append(f"status {status}, expected {want_status}")
    if 400 <= status < 500 and document is not None:
        error = document.get("error") if isinstance(document, dict) else None
        if not (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
            problems.append("no JSON error body {\"error\": {\"code\", \"message\"}}")
        elif want_code is not None and error["code"] != want_code:
            problems.append(f"code {error['code']!r}, expected {want_code!r}")
        if not (response_headers.get("Content-Type") or "").startswith("application/json"):
            problems.append(f"Content-Type {response_headers.get('Content-Type')!r}")
    if then is not None and document is not None and not problems:
        message = then(document)
        if message:
            problems.append(message)
    verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
    print(f"[bulk-check] {name}: {status} in {elapsed:.2f}s {verdict}", file=sys.stderr)
    if problems:
        failures.append(f"{name}: " + "; ".join(problems) + f" — answer {raw[:300]!r}")
    return document


def rows_named(expected):
    """The 422 names exactly these (line, code[, field]) rows."""

    def verify(document):
        details = document["error"].get("details") or {}
        got = [(r.get("line"), r.get("code"), r.get("field")) for r in details.get("rows", [])]
        for want in expected:
            line, code = want[0], want[1]
            field = want[2] if len(want) > 2 else None
            match = [g for g in got if g[0] == line and code in (None, g[1]) and field in (None, g[2])]
            if not match:
                return f"row {want} not reported; rows: {got}"
        if len(got) != len(expected):
            return f"{len(got)} rows reported, expected {len(expected)}: {got}"
        return None

    return verify


def batch_of(count):
    def verify(document):
        ids = document.get("job_ids")
        if not isinstance(ids, list) or len(ids) != count:
            return f"job_ids {ids!r}, expected {count}"
        if document.get("total") != count:
            return f"total {document.get('total')!r}, expected {count}"
        return None

    return verify


# Valid uploads.
check("two valid rows", lines(json.dumps(JOB), json.dumps(COMPLETION)), 201, then=batch_of(2))
check("CRLF line ends, blank lines, application/jsonl; charset", b"\r\n" + lines(json.dumps(JOB), "", "  ", json.dumps(JOB)).replace(b"\n", b"\r\n"),
      201, content_type="application/jsonl; charset=utf-8", then=batch_of(2))
check("no final newline", json.dumps(JOB).encode(), 201, then=batch_of(1))
check("1,000 rows", lines(*[row(prompt=f"fox {i}") for i in range(1000)]), 201, then=batch_of(1000))

# Invalid rows: nothing is submitted, each bad row is named by its line.
check("a row of an unknown kind", lines(json.dumps(JOB), json.dumps({"kind": "nope", "params": {}})), 422, "invalid_rows",
      then=rows_named([(2, None)]))
check("an invalid row among valid ones", lines(json.dumps(JOB), row(num_samples=0), json.dumps(JOB)), 422, "invalid_rows",
      then=lambda d: None if [r["line"] for r in d["error"]["details"]["rows"]] == [2] else f"rows {d['error']['details']['rows']}")
check("malformed lines", lines(json.dumps(JOB), '{"kind": "image_gen", "params": ', "not json", "[1, 2]", "42", '"text"', "null"),
      422, "invalid_rows", then=lambda d: None if [r["line"] for r in d["error"]["details"]["rows"]] == [2, 3, 4, 5, 6, 7]
      and all(r["code"] == "invalid_json" for r in d["error"]["details"]["rows"][:2]) else f"rows {d['error']['details']['rows']}")
check("a NUL in a string (\\u0000)", lines(json.dumps(JOB), row(prompt="a\u0000b")), 422, "invalid_rows",
      then=rows_named([(2, "invalid_value", "params.prompt")]))
check("a NUL in a key", lines('{"kind": "image_gen", "params": {"prompt": "a", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}, "metadata": {"a\\u0000": "b"}}'),
      422, "invalid_rows")
check("a raw NUL byte in a line", lines(json.dumps(JOB)) + b'{"kind": "image_gen", "params": {"prompt": "a\x00b"}}\n', 422, "invalid_rows",
      then=rows_named([(2, "invalid_json")]))
check("a lone surrogate (\\ud800)", lines(json.dumps(JOB), '{"kind": "image_gen", "params": {"prompt": "a\\ud800b", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}'),
      422, "invalid_rows", then=rows_named([(2, "invalid_json")]))
check("a lone low surrogate (\\udc00) in metadata", lines(json.dumps({**JOB, "metadata": {"note": "x"}}).replace('"x"', '"\\udc00"')),
      422, "invalid_rows", then=rows_named([(1, "invalid_json")]))
check("bytes that are not UTF-8", lines(json.dumps(JOB)) + row(prompt="a XX b").encode().replace(b"XX", b"\xff\xfe") + b"\n",
      422, "invalid_rows", then=rows_named([(2, "invalid_json")]))
check("a surrogate encoded as UTF-8 bytes (CESU)", row(prompt="a XX b").encode().replace(b"XX", b"\xed\xa0\x80") + b"\n",
      422, "invalid_rows", then=rows_named([(1, "invalid_json")]))
check("a 1 MB string", lines(row(prompt="x" * (1 << 20))), 422, "invalid_rows", then=rows_named([(1, None)]))
check("a 3 MB line of nesting", lines('{"kind": "image_gen", "params": ' + "[" * 1_500_000 + "]" * 1_500_000 + "}"), 422, "invalid_rows",
      then=rows_named([(1, "invalid_json")]))
check("a 5 MB line of whitespace and one row", b" " * (5 << 20) + lines(json.dumps(JOB)),
      413 if (5 << 20) + 200 > MAX_BYTES else 201, "payload_too_large" if (5 << 20) + 200 > MAX_BYTES else None)
check("over DREAMD_BULK_MAX_BYTES", lines(*[row(prompt="y" * 1000)] * (MAX_BYTES // 1000 + 2)), 413, "payload_too_large")
check("10,001 rows", lines(*["{}"] * 10_001), 413, "too_many_rows")
check("an object that is not a job", lines('{"kind": "image_gen"}', '{"params": {}}', "{}"), 422, "invalid_rows",
      then=lambda d: None if [r["line"] for r in d["error"]["details"]["rows"]] == [1, 2, 3] else f"rows {d['error']['details']['rows']}")
check("every row invalid, reported up to 1,000", lines(*["{}"] * 1500), 422, "invalid_rows",
      then=lambda d: None if d["error"]["details"]["truncated"] is True and len(d["error"]["details"]["rows"]) == 1000
      and d["error"]["details"]["invalid"] == 1500 else f"details {str(d['error']['details'])[:200]}")

# Empty bodies and the wrong content types.
check("an empty body", b"", 400, "empty_body")
check("only blank lines", b"\n\n  \r\n\t\n", 400, "empty_body")
check("Content-Type application/json", lines(json.dumps(JOB)), 415, "unsupported_media_type", content_type="application/json")
check("Content-Type text/plain", lines(json.dumps(JOB)), 415, "unsupported_media_type", content_type="text/plain")
check("no Content-Type", lines(json.dumps(JOB)), 415, "unsupported_media_type", content_type=None)
check("a Content-Type that is not a media type", lines(json.dumps(JOB)), 415, "unsupported_media_type", content_type=";;")
check("a Content-Type that only starts like NDJSON", lines(json.dumps(JOB)), 415, "unsupported_media_type", content_type="application/x-ndjsonx")

# Keys: none, a bad one; Idempotency-Key replays and conflicts.
check("no key", lines(json.dumps(JOB)), 401, token=None)
check("a bad key", lines(json.dumps(JOB)), 401, token="dmd_not-a-key")
key = "bulk-check-" + uuid.uuid4().hex
first = check("Idempotency-Key, first upload", lines(json.dumps(JOB), json.dumps(JOB)), 201, headers={"Idempotency-Key": key}, then=batch_of(2))
check("Idempotency-Key, same body again", lines(json.dumps(JOB), json.dumps(JOB)), 200, headers={"Idempotency-Key": key},
      then=lambda d: None if first and d.get("id") == first.get("id") else f"batch {d.get('id')} is not {first and first.get('id')}")
check("Idempotency-Key, another body", lines(json.dumps(JOB)), 409, "idempotency_conflict", headers={"Idempotency-Key": key})
check("Idempotency-Key that is not visible ASCII", lines(json.dumps(JOB)), 400, headers={"Idempotency-Key": "a b"})

print(f"[bulk-check] {cases} cases, {len(failures)} failed", file=sys.stderr)
for failure in failures:
    print(f"[bulk-check] FAILED {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
