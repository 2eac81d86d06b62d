"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Schemathesis draws `Idempotency-Key` values from a small space ("0", "(P)", ...), so unrelated
requests share keys and the server rightly answers the second with 422 (key reused for a different
request). Each valid key sent is made unique to its request, so those 422s do not mask real
findings; keys that break the documented pattern are sent as drawn, to check they are refused.
The replay semantics themselves are tested by IdempotencyAndEventsTests.
"""

import itertools
import os
import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")
_RUN = uuid.uuid4().hex[:8]
_COUNTER = itertools.count()


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        key = headers[name]
        if isinstance(key, str) and _VALID_KEY.match(key):
            suffix = f"-{_RUN}{next(_COUNTER)}"
            headers[name] = key[: 255 - len(suffix)] + suffix


@schemathesis.hook
def after_call(context, case, response):
    """A file's bytes come back under the type they were uploaded with, and Schemathesis uploads random
    bytes as, say, application/x-yaml, then parses the download as YAML. The bytes are opaque whatever
    their type, so they are checked as such, in every phase (a per-operation setting does not reach the
    stateful phase)."""
    if case.operation.path == "/api/v1/files/{id}/content" and response.status_code in (200, 206):
        response.headers["content-type"] = ["application/octet-stream"]


@schemathesis.auth()
class DemoUserAccessToken:
    """The demo user's access token (a JWT, valid 15 minutes), which scripts/schemathesis.sh gets by
    signing in once before the run. Nothing the run can call revokes it (it revokes the personal
    access tokens it finds, and signs out refresh tokens), so no request goes out unauthenticated
    because a sign-in in the middle of the run was slow on a loaded machine. Being an auth provider
    of the document's bearer scheme, not a fixed header, it is left out of the requests that check
    the server refuses a missing or bad token."""

    def get(self, case, context):
        return os.environ["PYAT_ACCESS_TOKEN"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
