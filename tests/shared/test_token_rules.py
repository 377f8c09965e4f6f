"""Tokens (api.md 2026-11-23): every claim of the wrong type is a 401, never a 500; a token whose
`exp` lies further ahead than TCI_MAX_TOKEN_TTL_SECONDS is a 401; `tci token` refuses to mint one
and fails with a message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import DEFAULT_MAX_TTL_SECONDS, VerifiedTokens, decode_token
from shared.cli import main
from shared.problems import Problem
from shared.settings import DEVELOPMENT_JWT_SECRET as SECRET


def signed(**claims: Any) -> str:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "someone", "role": "underwriter", "iat": now, "exp": now + 600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET, algorithm="HS256")


BAD_CLAIMS = {
    "a role that is a list": {"role": ["underwriter", "service"]},
    "a role that is an object": {"role": {"name": "service"}},
    "a role that is a number": {"role": 1},
    "an exp that is a string": {"exp": str(int(time.time()) + 600)},
    "an exp that is a list": {"exp": [1]},
    "an exp that is a boolean": {"exp": True},
    "an exp that is infinite": {"exp": float("inf")},
    "an exp that is a huge integer": {"exp": 10**400},
    "an exp that is a huge negative integer": {"exp": -(10**400)},
    "an iat that is a huge integer": {"iat": 10**400},
    "an nbf that is a huge integer": {"nbf": 10**400},
    "an iat that is a list": {"iat": [1]},
    "an nbf that is a string": {"nbf": "now"},
    "a sub that is a number": {"sub": 42},
    "a sub that is a list": {"sub": ["a"]},
    "a party_id that is a number": {"role": "policyholder", "party_id": 7},
    "an exp further ahead than the maximum lifetime": {"exp": int(time.time()) + 10 * 86_400},
    "an exp in the year 3000": {"exp": 32_503_680_000},
    "a sub with a NUL": {"sub": "a\x00b"},
    "a sub with a lone surrogate": {"sub": "a\ud800"},
    "a sub longer than its column": {"sub": "s" * 201},
    "a party_id with a NUL": {"role": "policyholder", "party_id": "p\x00q"},
    "a party_id longer than its column": {"role": "bank", "party_id": "b" * 65},
}


@pytest.mark.parametrize("claims", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
def test_a_token_with_a_claim_of_the_wrong_type_or_too_far_ahead_is_refused_as_401(
    claims: dict[str, Any],
) -> None:
    with pytest.raises(Problem) as refused:
        decode_token(signed(**claims), SECRET)
    assert refused.value.status == 401
    with pytest.raises(Problem) as cached:
        VerifiedTokens(SECRET).caller(signed(**claims))
    assert cached.value.status == 401


@pytest.mark.parametrize("claims", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_the_api_answers_such_a_token_with_a_401_problem(
    uw: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    answer = await uw.get("/v1/policies", headers={"Authorization": f"Bearer {signed(**claims)}"})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "unauthorized"


def test_a_token_living_exactly_the_maximum_lifetime_is_accepted() -> None:
    now = int(time.time())
    token = signed(exp=now + DEFAULT_MAX_TTL_SECONDS)
    assert decode_token(token, SECRET, now=now).role == "underwriter"
    with pytest.raises(Problem):
        decode_token(signed(exp=now + 601), SECRET, max_ttl_seconds=300, leeway_seconds=30, now=now)


def test_the_maximum_lifetime_is_a_setting_the_apps_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.underwriting.main import create_app

    monkeypatch.setenv("TCI_MAX_TOKEN_TTL_SECONDS", "600")
    tokens: VerifiedTokens = create_app().state.tokens
    now = time.time()
    assert tokens.caller(signed(exp=int(now) + 500)).role == "underwriter"
    with pytest.raises(Problem) as refused:
        tokens.caller(signed(exp=int(now) + 3600))
    assert refused.value.status == 401 and "600 seconds" in refused.value.detail
    assert len(tokens) == 1  # a refused token is never kept


def test_tci_token_refuses_a_ttl_past_the_maximum_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "--role", "service", "--ttl", str(100 * 365 * 86_400)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "at most 86400 seconds" in captured.err
    assert main(["token", "--role", "service", "--ttl", "86400"]) == 0
    minted = capsys.readouterr().out.strip()
    assert decode_token(minted, SECRET).role == "service"


def test_tci_token_in_production_without_a_secret_ends_with_a_message_not_a_traceback() -> None:
    env = {**os.environ, "TCI_ENV": "production"}
    env.pop("TCI_JWT_SECRET", None)
    done = subprocess.run([sys.executable, "-m", "shared.cli", "token", "--role", "service"],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "TCI_JWT_SECRET" in done.stderr
    assert done.stdout == ""
