import pytest

from deployments.http.auth import KeyRing
from deployments.http.errors import Unauthorized
from deployments.jobs import owner_of
from deployments.rate_limit import RateLimiter


def test_keyring_accepts_known_keys_only():
    ring = KeyRing(["alpha-key", "beta-key"])
    assert ring.check("beta-key") == owner_of("beta-key")
    for bad in (None, "", "alpha", "alpha-key ", "gamma"):
        with pytest.raises(Unauthorized):
            ring.check(bad)


def test_owner_is_a_digest_not_the_key():
    assert "secret" not in owner_of("secret") and len(owner_of("secret")) == 64


def test_rate_limiter_refills_over_time():
    limiter = RateLimiter(per_minute=3)
    for _ in range(3):
        assert limiter.retry_after("o", now=100.0) is None
    wait = limiter.retry_after("o", now=100.0)
    assert wait is not None and wait >= 1
    assert limiter.retry_after("other", now=100.0) is None  # per key
    assert limiter.retry_after("o", now=120.5) is None  # 20 s later one token is back


def test_rate_limit_zero_disables():
    limiter = RateLimiter(per_minute=0)
    assert all(limiter.retry_after("o") is None for _ in range(1000))
