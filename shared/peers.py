"""What the services ask of each other over HTTP: the clients (one per peer, built in the app's
lifespan, overridable in tests) and the cross-service models they read. Unknown fields are ignored,
so a service may add fields to its answers without breaking the others."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from shared.contracts import MoneyModel
from shared.http import ServiceClient
from shared.problems import Problem, not_found
from shared.settings import Settings

PEER_NAMES = ("underwriting", "claims", "collections")


class Peer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PolicyTerms(Peer):
    """A policy as underwriting answers it: the terms claims and collections apply."""

    id: str
    policyholder_id: str
    currency: str
    start_date: dt.date
    end_date: dt.date
    cover_type: str
    max_liability: MoneyModel
    indemnity_pct: Decimal
    political_risk_cover: bool
    political_indemnity_pct: Decimal
    deductible: MoneyModel
    claim_threshold: MoneyModel
    single_buyer_cap: MoneyModel | None
    claim_filing_days: int
    documents_grace_days: int
    overdue_notification_days: int
    max_extension_days: int
    protracted_default_wait_days: int
    claims_calendar_country: str
    collection_ladder: str


class BuyerFacts(Peer):
    id: str
    country: str
    legal_form: str
    grade: int


class CoverageFacts(Peer):
    """A coverage check's answer, as claims reads it for each invoice."""

    covered: bool
    limit_in_force: MoneyModel | None
    limit_source: str | None
    reasons: list[str]
    conditions: list[dict[str, Any]]


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


def _raise_for_upstream(status: int, peer: str, text: str) -> None:
    if status >= 300:
        raise Problem(502, "upstream-error", f"{peer} answered {status}", upstream_body=text[:1000])
