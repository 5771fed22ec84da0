"""Schemathesis against the API's /openapi.json: generated requests, a bounded number per
operation, to a live server on a real database; no answer may be a server error, and every
answer must match the document.

Run by ``.ci/run`` as a step of its own (``python -m pytest tests/schemathesis_api.py``), so
the main suite stays quick; the name keeps it out of the default collection.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from api_support import live_server
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tracedb import AutomationTraceDB

EXAMPLES = 40


@pytest.fixture(scope="module")
def key(db_url) -> str:
    with AutomationTraceDB(db_url) as db:
        user = f"fuzz-{uuid.uuid4().hex[:6]}"
        db.save_trace(user, "p", "thread-1", [{"node": "a"}, 1, "two"], name="seed")
        return db.create_api_key(user)[1]


@pytest.fixture(scope="module")
def server(db_url, key):
    with live_server(db_url, max_body_bytes=256 * 1024) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


# Every check but two. "A schema-valid request is accepted": the store's rules go beyond the
# document (blank text, a trace of another user, an unknown id), and refusing those with a
# named 4xx is what they should get. "A schema-violating request is refused": in a query
# string every value is text, so a generated boolean false arrives as the valid string
# "false" and is flagged. Invalid requests are still generated and sent, and must get a 4xx
# through the other checks (no server error, a documented status, a documented body).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.use_after_free,
    checks.ensure_resource_availability,
    checks.ignored_auth,
    checks.allow_header_conformance,
    checks.unsupported_method,
    checks.missing_required_header,
]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_is_a_server_error(case, key):
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
