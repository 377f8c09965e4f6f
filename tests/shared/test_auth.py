"""Tokens as api.md states them: HS256 only, required claims, 30 s leeway, known roles."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import VerifiedTokens, decode_token, mint_token
from shared.problems import Problem
from shared.settings import DEVELOPMENT_JWT_SECRET as SECRET


def refused(token: str) -> str:
    with pytest.raises(Problem) as caught:
        decode_token(token, SECRET)
    assert caught.value.status == 401
    return caught.value.detail


def test_a_minted_token_names_its_caller() -> None:
    caller = decode_token(mint_token(SECRET, role="policyholder", party_id="ph-1"), SECRET)
    assert (caller.role, caller.party_id) == ("policyholder", "ph-1")


def test_expiry_allows_thirty_seconds_of_leeway_and_no_more() -> None:
    now = time.time()
    assert decode_token(mint_token(SECRET, role="underwriter", ttl_seconds=-20, now=now), SECRET)
    assert "expired" in refused(mint_token(SECRET, role="underwriter", ttl_seconds=-45, now=now))


def test_wrong_signature_and_alg_none_are_refused() -> None:
    assert "signature" in refused(mint_token("x" * 40, role="underwriter"))
    unsigned = jwt.encode({"sub": "a", "role": "underwriter", "exp": time.time() + 60}, None,
                          algorithm="none")  # fmt: skip
    refused(unsigned)
    hs512 = jwt.encode({"sub": "a", "role": "underwriter", "exp": time.time() + 60}, SECRET,
                       algorithm="HS512")  # fmt: skip
    assert "HS256" in refused(hs512)


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "underwriter"},
        {"sub": "a"},
        {"sub": "a", "role": "pirate"},
        {"sub": "a", "role": "policyholder"},
        {"sub": "a", "role": "bank"},
    ],
)
def test_missing_or_unknown_claims_are_refused(claims: dict[str, str]) -> None:
    refused(jwt.encode({**claims, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"))


def test_a_token_without_exp_is_refused() -> None:
    refused(jwt.encode({"sub": "a", "role": "underwriter"}, SECRET, algorithm="HS256"))


def test_garbage_is_refused() -> None:
    refused("not-a-token")


def test_a_verified_token_is_remembered_but_its_expiry_checked_on_every_use() -> None:
    now = float(int(time.time()))  # tokens carry whole seconds
    clock = [now]
    tokens = VerifiedTokens(SECRET, leeway_seconds=30, clock=lambda: clock[0])
    token = mint_token(SECRET, role="bank", party_id="bank-1", ttl_seconds=60, now=now)
    first = tokens.caller(token)
    assert first.party_id == "bank-1" and len(tokens) == 1
    assert tokens.caller(token) is first  # remembered, not verified again
    clock[0] = now + 60 + 30  # the last second of leeway
    assert tokens.caller(token) is first
    clock[0] = now + 60 + 31
    with pytest.raises(Problem) as expired:
        tokens.caller(token)
    assert expired.value.status == 401 and "expired" in expired.value.detail
    assert len(tokens) == 0


def test_a_refused_token_is_never_remembered_and_the_memory_is_bounded() -> None:
    tokens = VerifiedTokens(SECRET, size=8)
    forged = mint_token("another-secret-that-is-long-enough-0123456789", role="service")
    for _ in range(2):
        assert "signature" in refused_by(tokens, forged)
    assert len(tokens) == 0
    for n in range(20):
        tokens.caller(mint_token(SECRET, role="service", subject=f"svc-{n}"))
    assert 0 < len(tokens) <= 8


def refused_by(tokens: VerifiedTokens, token: str) -> str:
    with pytest.raises(Problem) as caught:
        tokens.caller(token)
    assert caught.value.status == 401
    return str(caught.value.detail)
