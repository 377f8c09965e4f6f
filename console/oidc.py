"""Signing staff in through the insurer's OpenID Connect provider (outside development, or
whenever `TCI_CONSOLE_OIDC_ISSUER` is set): the authorization-code flow with PKCE (S256), state
and nonce, by Authlib's Starlette client. The provider is found by discovery
(`<issuer>/.well-known/openid-configuration`); the ID token's signature is checked against its
JWKS, and its `iss`, `aud`, `exp` and `nonce`. The flow's state, nonce and PKCE verifier wait in
a short-lived signed cookie (Starlette's session middleware) between the redirect to the provider
and its answer; the ID token names the person's console role and who they are, and the console
then mints its own service token for them, as the development form does."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import (  # type: ignore[import-untyped]
    MismatchingStateError,
    OAuthError,
)
from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]
from fastapi import Request
from joserfc.errors import JoseError
from starlette.responses import Response

from console.settings import ConsoleSettings
from shared.auth import MAX_SUBJECT_LENGTH
from shared.contracts import unstorable_text

# The cookie holding a sign-in's state, nonce and PKCE verifier while the person is at the
# provider; a sign-in not finished within OIDC_FLOW_SECONDS starts again.
OIDC_FLOW_COOKIE = "tci_console_oidc"
OIDC_FLOW_SECONDS = 600
DISCOVERY_PATH = "/.well-known/openid-configuration"
log = logging.getLogger("console.oidc")
# Authlib's HTTP client is httpx2 when that is installed, else httpx (this project's): a provider
# that cannot be reached raises the errors of whichever it is.
try:
    import httpx2  # type: ignore[import-not-found, unused-ignore]

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:
    TRANSPORT_ERRORS = (httpx.HTTPError,)
# A discovery document that cannot be had, or is not JSON.
DISCOVERY_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, ValueError)


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in: the page's HTTP status, the catalogue's
    `problem.<slug>` that explains it to the person, and the reason, for the log only."""

    def __init__(self, status: int, slug: str, reason: str) -> None:
        super().__init__(f"{status} {slug}: {reason}")
        self.status, self.slug, self.reason = status, slug, reason


@dataclass(frozen=True)
class Person:
    """Who signed in: their console role and the subject their service token names."""

    role: str
    subject: str


def flow_cookie_secret(settings: ConsoleSettings) -> str:
    """The key the flow cookie is signed with: derived from the JWT secret, never equal to it."""
    return hmac.new(settings.jwt_secret.encode(), b"console-oidc-flow", hashlib.sha256).hexdigest()


def origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def person_of(claims: Mapping[str, Any], settings: ConsoleSettings,
              console_roles: tuple[str, ...]) -> Person:  # fmt: skip
    """The console role and subject a verified ID token names. The role claim is a string, or a
    list (a provider's groups) holding exactly one console role; anything else is refused."""
    found = claims.get(settings.console_oidc_role_claim)
    candidates = found if isinstance(found, list) else [found]
    roles = [role for role in candidates if isinstance(role, str) and role in console_roles]
    if len(roles) != 1:
        raise SignInRefused(403, "sign-in-role",
                            f"claim {settings.console_oidc_role_claim!r} is {found!r}")  # fmt: skip
    subject = claims.get(settings.console_oidc_subject_claim)
    if (not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH
            or unstorable_text(subject)):  # fmt: skip
        raise SignInRefused(403, "sign-in-subject",
                            f"claim {settings.console_oidc_subject_claim!r} is {subject!r}")  # fmt: skip
    return Person(role=roles[0], subject=subject.strip())


class Provider:
    """The insurer's OpenID Connect provider, as this console's client."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.issuer = settings.console_oidc_issuer
        scopes = settings.console_oidc_scopes.split()
        scope = " ".join(["openid", *[s for s in scopes if s != "openid"]])
        self.client: Any = OAuth().register(
            "insurer",
            client_id=settings.console_oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=self.issuer.rstrip("/") + DISCOVERY_PATH,
            client_kwargs={"scope": scope, "code_challenge_method": "S256",
                           "timeout": settings.http_timeout_seconds},
        )  # fmt: skip

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (read once, then kept); its `issuer` must be the
        one configured (OpenID Connect Discovery, section 4.3)."""
        try:
            found: dict[str, Any] = await self.client.load_server_metadata()
        except DISCOVERY_ERRORS as exc:
            raise SignInRefused(503, "identity-provider-unavailable",
                                f"discovery failed: {exc!r}") from None  # fmt: skip
        if found.get("issuer") != self.issuer:
            raise SignInRefused(503, "identity-provider-unavailable",
                                f"discovery names issuer {found.get('issuer')!r}")  # fmt: skip
        return found

    def known_end_session_endpoint(self) -> str | None:
        """The end-session endpoint, when the discovery document is already read."""
        endpoint = self.client.server_metadata.get("end_session_endpoint")
        return endpoint if isinstance(endpoint, str) else None

    async def start(self, request: Request, redirect_uri: str) -> Response:
        """The redirect to the provider's authorization endpoint (state, nonce and the PKCE
        challenge in it; their secrets kept in the flow cookie)."""
        await self.metadata()
        try:
            response: Response = await self.client.authorize_redirect(request, redirect_uri)
        except TRANSPORT_ERRORS as exc:
            raise SignInRefused(503, "identity-provider-unavailable", repr(exc)) from None
        return response

    async def finish(self, request: Request, console_roles: tuple[str, ...]) -> Person:
        """The person the provider's answer signs in, or `SignInRefused`: the state must be
        this browser's, the code is exchanged with the PKCE verifier and the client secret, and
        the ID token must be signed by a key of the provider's JWKS, issued by the issuer, for
        this client, not expired, and carry this sign-in's nonce."""
        error = request.query_params.get("error")
        if error:
            raise SignInRefused(403, "sign-in-denied", f"the provider answered {error!r}: "
                                f"{request.query_params.get('error_description')!r}")  # fmt: skip
        await self.metadata()
        claims_options = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.settings.console_oidc_client_id},
            "exp": {"essential": True},
        }
        try:
            token = await self.client.authorize_access_token(
                request, claims_options=claims_options, leeway=self.settings.jwt_leeway_seconds
            )
        except MismatchingStateError:
            raise SignInRefused(400, "sign-in-failed", "the state is not this browser's") from None
        except OAuthError as exc:
            raise SignInRefused(400, "sign-in-failed", f"the provider refused: {exc}") from None
        except JoseError as exc:
            raise SignInRefused(400, "sign-in-failed", f"the ID token: {exc!r}") from None
        except TRANSPORT_ERRORS as exc:
            raise SignInRefused(503, "identity-provider-unavailable", repr(exc)) from None
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused(400, "sign-in-failed", "the provider answered no ID token")
        return person_of(claims, self.settings, console_roles)

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """Where to send a person who signs out, when the provider advertises an end-session
        endpoint (RP-Initiated Logout); None otherwise, or when the provider cannot be asked."""
        try:
            metadata = await self.metadata()
        except SignInRefused as refused:
            log.warning("signing out without the provider: %s", refused.reason)
            return None
        if not metadata.get("end_session_endpoint"):
            return None
        found = await self.client.create_logout_url(
            post_logout_redirect_uri=post_logout_redirect_uri,
            client_id=self.settings.console_oidc_client_id,
        )
        url: str = found["url"]
        return url


def provider_of(request: Request) -> Provider | None:
    """This console's provider (None when OpenID Connect sign-in is not configured)."""
    provider: Provider | None = getattr(request.app.state, "oidc", None)
    return provider
