"""A sample webhook receiver for idgate: checks each delivery's Standard Webhooks signature
and prints the event as one JSON line. Python standard library only.

Environment:
  WEBHOOK_SECRETS   the endpoint's signing secret(s) from `idgate webhook add` (whsec_...),
                    space-separated while a rotation overlaps
  WEBHOOK_PORT      port to listen on (9443)
  WEBHOOK_CERT, WEBHOOK_KEY   certificate and key (PEM) for https; the gateway sends
                    webhooks to https URLs only

Answers 204 to a delivery it accepts (the gateway then counts it delivered), 401 to one whose
signature or timestamp does not check (the gateway retries it), 400 to a body that is not an
event. A real receiver applies an event only if its `sequence` is above the last one it
applied for that resource, and treats `webhook-id` as an idempotency key (docs/events.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300  # Standard Webhooks: refuse timestamps this far from now (replays)
MAX_BODY = 1 << 20


def secrets_from(value: str) -> list[bytes]:
    return [base64.b64decode(s.removeprefix(SECRET_PREFIX)) for s in value.split()]


def verified(keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """Whether one of the `v1,` signatures is the HMAC-SHA256 of "id.timestamp.body" under one
    of the keys, and the timestamp is within the tolerance."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = [
        base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode() for key in keys
    ]
    for signature in headers.get("webhook-signature", "").split():
        version, _, value = signature.partition(",")
        if version == "v1" and any(hmac.compare_digest(value, e) for e in expected):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    keys: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not verified(self.keys, headers, body, time.time()):
            self._log({"refused": "signature", "webhook-id": headers.get("webhook-id")})
            self.send_response(401)
            self.end_headers()
            return
        try:
            event = json.loads(body)
            line = {
                "id": event["id"],
                "type": event["type"],
                "tenant": event["tenant"],
                "sequence": event["sequence"],
                "resource": event["resource"],
            }
        except (ValueError, KeyError, TypeError):
            self.send_response(400)
            self.end_headers()
            return
        self._log(line)
        self.send_response(204)
        self.end_headers()

    def _log(self, line: dict[str, object]) -> None:
        print(json.dumps(line), flush=True)

    def log_message(self, format: str, *args: object) -> None:  # the JSON lines say it all
        pass


def main() -> None:
    Handler.keys = secrets_from(os.environ.get("WEBHOOK_SECRETS", ""))
    if not Handler.keys:
        print("WEBHOOK_SECRETS is empty: every delivery is refused", file=sys.stderr)
    port = int(os.environ.get("WEBHOOK_PORT", "9443"))
    server = ThreadingHTTPServer(("", port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["WEBHOOK_CERT"], os.environ["WEBHOOK_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on https://0.0.0.0:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
