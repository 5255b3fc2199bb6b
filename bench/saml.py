"""`python -m bench.saml`: how long the ACS takes to check a signed SAML Response.

A pysaml2 IdP (the one the tests use, signing through xmlsec1 with RSA-SHA256) answers our
AuthnRequests with signed assertions (12 group values: about 5.8 KB); each Response is
then checked by `sso.saml.process_response` (python3-saml in strict mode plus our checks),
one after the other, and the latencies are printed. Making the Responses is not timed.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sso.saml import (
    SamlSp,
    authn_request,
    new_sp_key,
    parse_idp_metadata,
    process_response,
    sp_metadata,
)
from tests.saml_idp import TestIdp, idp_xml, key_pair

SP = "https://id.example/sso/acme/okta/metadata"
ACS = "https://id.example/sso/acme/okta/acs"
TARGET_P50_MS = 15.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.saml", description=__doc__)
    parser.add_argument("--responses", type=int, default=200, help="Responses checked (200)")
    parser.add_argument("--groups", type=int, default=12, help="group values per assertion (12)")
    args = parser.parse_args()
    key = new_sp_key("bench", datetime.now(UTC))
    sp = SamlSp(SP, ACS, key.certificate_pem, key.private_key_pem)
    with tempfile.TemporaryDirectory() as folder:
        signing = key_pair(Path(folder), "idp")
        idp = parse_idp_metadata(idp_xml(signing=(signing,)))
        server = TestIdp(
            signing, [sp_metadata(entity_id=SP, acs_url=ACS, certificate_pem=key.certificate_pem)]
        )
        identity = {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [
                "jane@corp.example"
            ],
            "groups": [f"group-{i:04d}-engineering" for i in range(args.groups)],
        }
        cases = []
        for _ in range(args.responses):
            request_id, url = authn_request(sp, idp, relay_state=None)
            answer = server.answer(url, sign_assertion=True, name_id="00u-jane", identity=identity)
            cases.append((request_id, answer))
    size = len(base64.b64decode(cases[0][1]))
    latencies = []
    for request_id, answer in cases:
        started = time.perf_counter()
        process_response(sp, idp, answer, request_id=request_id, allow_unsolicited=False)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    verdict = "PASS" if p50 <= TARGET_P50_MS else "MISS"
    print(
        f"ACS check of a signed Response of {size:,} bytes ({args.responses} responses): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms; "
        f"target p50 <= {TARGET_P50_MS:g} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
