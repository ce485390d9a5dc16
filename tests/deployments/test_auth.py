import pytest

from deployments.auth import KeyRing, RateLimiter
from deployments.http_errors import RateLimited, Unauthorized
from deployments.jobs import owner_of


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
        limiter.check("o", now=100.0)
    with pytest.raises(RateLimited) as refused:
        limiter.check("o", now=100.0)
    assert refused.value.retry_after >= 1
    limiter.check("other", now=100.0)  # per key
    limiter.check("o", now=120.5)  # 20 s later one token is back


def test_rate_limit_zero_disables():
    limiter = RateLimiter(per_minute=0)
    for _ in range(1000):
        limiter.check("o")
