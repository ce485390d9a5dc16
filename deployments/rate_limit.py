"""Per-key token buckets. One instance lives in the job tracker, so every Ingress replica shares
it: the limit is per key for the whole service, not per replica."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """Token bucket per owner: `per_minute` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, owner: str, now: float | None = None) -> int | None:
        """Take one token: None when there was one, else the seconds until there will be."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(owner, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[owner] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self._buckets[owner] = (tokens - 1.0, now)
        return None
