"""What the services ask of each other over HTTP: one client per peer (built in the app's lifespan,
overridable in tests) and the reads they make, typed with `shared.contracts`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request

from shared.contracts import BuyerFacts, Peer, PolicyTerms
from shared.http import ServiceClient
from shared.problems import SERVICE_UNAVAILABLE, UPSTREAM_ERROR, Problem, not_found
from shared.settings import Settings

PEER_NAMES = ("underwriting", "claims", "collections")


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
    _raise_for_upstream(response.status_code, "underwriting", response.text)
    return PolicyTerms.model_validate(response.json())


async def fetch_buyer(peers: Mapping[str, ServiceClient], buyer_id: str) -> BuyerFacts:
    response = await peers["underwriting"].request("GET", f"/v1/buyers/{buyer_id}")
    if response.status_code == 404:
        raise not_found("buyer", buyer_id)
    _raise_for_upstream(response.status_code, "underwriting", response.text)
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
    _raise_for_upstream(response.status_code, "underwriting", response.text)
    both = _PolicyAndBuyer.model_validate_json(response.content)
    if check_policy is not None:
        check_policy(both.policy)
    if both.buyer is None:
        raise not_found("buyer", buyer_id)
    return both.policy, both.buyer


class _PolicyAndBuyer(Peer):
    policy: PolicyTerms
    buyer: BuyerFacts | None


def _raise_for_upstream(status: int, peer: str, text: str) -> None:
    if status >= 300:
        raise upstream_problem(status, peer, text)


def upstream_problem(status: int, peer: str, text: str) -> Problem:
    """What a caller is told when a peer did not answer as it should: a peer that cannot serve
    now (503, 504, 429) leaves this service unable to answer now too (503, to be retried); any
    other answer is a bad gateway (502)."""
    if status in (429, 503, 504):
        return Problem(SERVICE_UNAVAILABLE, f"{peer} cannot answer now ({status}); retry later")
    return Problem(UPSTREAM_ERROR, f"{peer} answered {status}", upstream_body=text[:1000])
