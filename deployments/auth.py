"""API keys (compared in constant time) and per-key rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from deployments.http_errors import RateLimited, Unauthorized
from deployments.jobs import owner_of

API_KEY_HEADER = "api-key"


class KeyRing:
    """The accepted keys, held as digests; `check` costs the same whichever key matches."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

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


class RateLimiter:
    """Token bucket per owner: `per_minute` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, owner: str, now: float | None = None) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(owner, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[owner] = (tokens, now)
            raise RateLimited(
                f"Too many requests: the limit is {self.per_minute} a minute per API key; retry shortly.",
                retry_after=max(1, math.ceil((1.0 - tokens) / rate)),
            )
        self._buckets[owner] = (tokens - 1.0, now)
