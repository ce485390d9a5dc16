"""API keys, compared in constant time. (The per-key rate limit is `deployments/rate_limit.py`.)"""

from __future__ import annotations

import hashlib
import hmac

from deployments.http.errors import Unauthorized
from deployments.jobs import owner_of

API_KEY_HEADER = "api-key"


class KeyRing:
    """The accepted keys, held as digests; `check` costs the same whichever key matches."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, presented: str | None) -> str:
        """The owner id of a valid key; `Unauthorized` otherwise."""
        if not presented:
            raise Unauthorized(f"Missing API key: send it in the `{API_KEY_HEADER}` header.")
        digest = hashlib.sha256(presented.encode()).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Unauthorized("The API key is not valid.")
        return owner_of(presented)
