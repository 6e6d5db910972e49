"""schemathesis hooks of scripts/api-check.sh (loaded through SCHEMATHESIS_HOOKS).

A serializer for `application/x-ndjson`, which schemathesis has none for: the OpenAPI document describes
the body of POST /v1/jobs/bulk by the schema of one line (a JobRequest), so a generated value goes on the
wire as one JSON line. Positive data is then one job row, negative data one row the server must refuse.
Many rows, malformed lines, NUL and lone surrogates, huge lines, an empty body and the wrong content type
are sent by scripts/bulk_check.py.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    # `surrogatepass`: a lone surrogate the generator made goes out as the bytes it would have been, which
    # are not UTF-8, and the server must refuse them like any other line that is not valid JSON text.
    line = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return {"data": (line + "\n").encode("utf-8", "surrogatepass")}


# Workaround for a schemathesis 4.32.5 bug: while it looks for links in responses, it splits every string
# of a JSON body that starts with http:// or https:// with urllib's urlsplit, which raises ValueError
# ("Invalid IPv6 URL") on a bracket it cannot pair, e.g. an echoed `http://[x/` that the server refused;
# the run then ends with an internal error. Such a string names no operation of this API: it is skipped.
def _tolerant(function):
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError:
            return None

    wrapper.__wrapped__ = function
    return wrapper


try:
    from schemathesis.engine import observations as _observations
    from schemathesis.specs.openapi.stateful import inference as _inference
except ImportError:  # another schemathesis layout: nothing to mend
    pass
else:
    if hasattr(_observations, "_same_origin_path"):
        _observations._same_origin_path = _tolerant(_observations._same_origin_path)
    if hasattr(_inference, "LinkInferencer") and hasattr(_inference.LinkInferencer, "_normalize_location"):
        _inference.LinkInferencer._normalize_location = _tolerant(_inference.LinkInferencer._normalize_location)
