"""Schemathesis hooks for the fuzzed API run (tests/chaos/test_hostile_input.py): a check that
every 4xx answer is the service's error body, one English sentence in `detail`."""

from __future__ import annotations

import json

import schemathesis


@schemathesis.check
def error_is_a_sentence(ctx, response, case):  # type: ignore[no-untyped-def]
    if not 400 <= response.status_code < 500:
        return None
    try:
        detail = json.loads(response.content).get("detail")
    except (ValueError, AttributeError):
        raise AssertionError(f"{response.status_code} without a JSON body: {response.content[:200]!r}") from None
    if not (isinstance(detail, str) and detail[:1].isupper() and detail.rstrip().endswith((".", "?", ")"))):
        raise AssertionError(f"{response.status_code} whose detail is not a sentence: {detail!r}")
    return None
