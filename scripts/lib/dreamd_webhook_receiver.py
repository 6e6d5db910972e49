#!/usr/bin/env python3
"""A tiny webhook receiver for scripts/demo.sh: verifies each Standard Webhooks signature with
hmac/hashlib (nothing of dreamd's), prints one line per webhook and appends it as JSON to a log.

    dreamd_webhook_receiver.py PORT LOGFILE      (the secret comes from $WEBHOOK_SECRET)
"""
import base64, hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG = int(sys.argv[1]), sys.argv[2]
SECRET = os.environ["WEBHOOK_SECRET"]


def verify(headers, body: bytes, tolerance: int = 300) -> bool:
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (entry.partition(",") for entry in headers.get("webhook-signature", "").split(" "))
    )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ok = verify(self.headers, body)
        event = json.loads(body) if body else {}
        record = {"webhook_id": self.headers.get("webhook-id"), "type": event.get("type"),
                  "job_id": (event.get("data") or {}).get("id"), "verified": ok}
        with open(LOG, "a") as log:
            log.write(json.dumps(record) + "\n")
        print(f"webhook {record['webhook_id']} {record['type']} job {record['job_id']} "
              f"signature {'verified' if ok else 'INVALID'}", flush=True)
        self.send_response(204 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
