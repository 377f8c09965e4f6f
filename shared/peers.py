"""What the services ask of each other over HTTP: one client per peer (built in the app's lifespan,
overridable in tests) and the reads they make, typed with `shared.contracts`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Annotated

import httpx
from fastapi import Depends, Request

from shared.contracts import BuyerFacts, Peer, PolicyTerms
from shared.http import ServiceClient
from shared.problems import PROBLEM_JSON, SERVICE_UNAVAILABLE, UPSTREAM_ERROR, Problem, not_found
from shared.settings import Settings

PEER_NAMES = ("underwriting", "claims", "collections")
# A peer's problem passed on to a caller keeps this much of its detail; its log this much of a body.
UPSTREAM_DETAIL_CHARS = 300
LOGGED_BODY_CHARS = 1000
log = logging.getLogger("tci.peers")


def build_peers(settings: Settings, caller_name: str) -> dict[str, ServiceClient]:
    urls = {"underwriting": settings.underwriting_url, "claims": settings.claims_url,
            "collections": settings.collections_url}  # fmt: skip
    return {
        name: ServiceClient(url, jwt_secret=settings.jwt_secret, caller_name=caller_name,
                            timeout_seconds=settings.http_timeout_seconds)
        for name, url in urls.items() if name != caller_name
    }  # fmt: skip


async def get_peers(request: Request) -> Mapping[str, ServiceClient]:
    """The clients of the other services (a dependency, so tests can point them in-process)."""
    peers: Mapping[str, ServiceClient] = request.app.state.peers
    return peers


PeersDep = Annotated[Mapping[str, ServiceClient], Depends(get_peers)]


async def fetch_policy(peers: Mapping[str, ServiceClient], policy_id: str) -> PolicyTerms:
    """The policy from underwriting; 404 when it does not exist."""
    response = await peers["underwriting"].request("GET", f"/v1/policies/{policy_id}")
    if response.status_code == 404:
        raise not_found("policy", policy_id)
    _raise_for_upstream(response, "underwriting")
    return PolicyTerms.model_validate(response.json())


async def fetch_buyer(peers: Mapping[str, ServiceClient], buyer_id: str) -> BuyerFacts:
    response = await peers["underwriting"].request("GET", f"/v1/buyers/{buyer_id}")
    if response.status_code == 404:
        raise not_found("buyer", buyer_id)
    _raise_for_upstream(response, "underwriting")
    return BuyerFacts.model_validate(response.json())


async def fetch_policy_and_buyer(
    peers: Mapping[str, ServiceClient],
    policy_id: str,
    buyer_id: str,
    check_policy: Callable[[PolicyTerms], object] | None = None,
) -> tuple[PolicyTerms, BuyerFacts]:
    """The policy and the buyer, read from underwriting in one call (never cached: a cancelled
    policy or a sanctioned buyer is seen on the next request). The policy's refusal (404, 502,
    503, or `check_policy`'s: not the caller's) comes before the buyer's 404, so a stranger's
    policy answers as one that does not exist whatever the buyer."""
    response = await peers["underwriting"].request(
        "GET", f"/v1/policies/{policy_id}/buyers/{buyer_id}"
    )
    if response.status_code == 404:
        raise not_found("policy", policy_id)
    _raise_for_upstream(response, "underwriting")
    both = _PolicyAndBuyer.model_validate_json(response.content)
    if check_policy is not None:
        check_policy(both.policy)
    if both.buyer is None:
        raise not_found("buyer", buyer_id)
    return both.policy, both.buyer


class _PolicyAndBuyer(Peer):
    policy: PolicyTerms
    buyer: BuyerFacts | None


def _raise_for_upstream(response: httpx.Response, peer: str) -> None:
    if response.status_code >= 300:
        raise upstream_problem(response, peer)


def upstream_problem(response: httpx.Response, peer: str) -> Problem:
    """What a caller is told when a peer did not answer as it should: a peer that cannot serve
    now (503, 504, 429) leaves this service unable to answer now too (503, to be retried); any
    other answer is a bad gateway (502), carrying the peer's problem in short when it answered
    one (`short_problem`) and nothing of any other body (an HTML error page is no use to a
    partner and may say what it should not): that is logged, for the operators."""
    status = response.status_code
    if status in (429, 503, 504):
        return Problem(SERVICE_UNAVAILABLE, f"{peer} cannot answer now ({status}); retry later")
    log.warning("%s answered %d: %s", peer, status, response.text[:LOGGED_BODY_CHARS])
    detail = f"{peer} answered {status}"
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == PROBLEM_JSON:
        with contextlib.suppress(ValueError):
            passed = short_problem(json.loads(response.content))
            if passed is not None:
                return Problem(UPSTREAM_ERROR, detail, upstream_error=passed)
    return Problem(UPSTREAM_ERROR, detail)


def short_problem(problem: object) -> dict[str, str | int] | None:
    """A peer's problem as it is passed on: its `type`, `title`, `status` and `detail` (at most
    UPSTREAM_DETAIL_CHARS), nothing else it carried; None for what is no problem."""
    if not isinstance(problem, dict) or not isinstance(problem.get("type"), str):
        return None
    short: dict[str, str | int] = {}
    for member, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        value = problem.get(member)
        if isinstance(value, kind) and not isinstance(value, bool):
            short[member] = value[:UPSTREAM_DETAIL_CHARS] if isinstance(value, str) else value
    return short
