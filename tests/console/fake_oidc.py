"""A small OpenID Connect provider for tests, served for real over loopback HTTP (uvicorn in a
thread): discovery, JWKS (an RSA key generated at start), an authorization endpoint that approves
the configured person at once (back to the client with a code and its state), a token endpoint
that checks the code, the client's secret and the PKCE verifier and answers a signed ID token with
the sign-in's nonce, and an end-session endpoint. A test may spoil the next ID token
(`id_token_changes`, `signing_key`) to see the client refuse it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

KEY_ID = "fake-issuer-key-1"


def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"})


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    """An authorization code handed out, and what it was asked with."""

    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    claims: dict[str, Any]


@dataclass
class FakeIssuer:
    client_id: str
    client_secret: str
    person: dict[str, Any] = field(default_factory=dict)  # the ID token's claims about them
    id_token_changes: dict[str, Any] = field(default_factory=dict)  # spoils the next tokens
    signing_key: RSAKey | None = None  # signs with another key than the JWKS publishes
    key: RSAKey = field(default_factory=new_key)
    url: str = ""
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    end_session_requests: list[dict[str, str]] = field(default_factory=list)
    codes: dict[str, Grant] = field(default_factory=dict)

    # ------------------------------------------------------------ endpoints

    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "end_session_endpoint": f"{self.url}/end_session",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })  # fmt: skip

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.authorize_requests.append(query)
        if (query.get("client_id") != self.client_id or query.get("response_type") != "code"
                or "openid" not in query.get("scope", "").split()
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge") or not query.get("redirect_uri")):  # fmt: skip
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(self.client_id, query["redirect_uri"], query.get("nonce"),
                                 query["code_challenge"], dict(self.person))  # fmt: skip
        answer = {"code": code, "state": query.get("state", "")}
        return RedirectResponse(f"{query['redirect_uri']}?{urlencode(answer)}", status_code=302)

    def _client_authenticated(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode()
            client_id, _, secret = given.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    async def token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.token_requests.append(form)
        if not self._client_authenticated(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(form.get("code", ""), None)  # a code is used once
        if (form.get("grant_type") != "authorization_code" or grant is None
                or form.get("redirect_uri") != grant.redirect_uri
                or s256(form.get("code_verifier", "")) != grant.code_challenge):  # fmt: skip
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300,
                  "auth_time": now, **grant.claims}  # fmt: skip
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims.update(self.id_token_changes)
        key = self.signing_key or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)
        return JSONResponse({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                             "expires_in": 300, "id_token": id_token})  # fmt: skip

    async def end_session(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.end_session_requests.append(query)
        back = query.get("post_logout_redirect_uri")
        if back:
            return RedirectResponse(back, status_code=302)
        return Response("signed out", media_type="text/plain")

    # ------------------------------------------------------------ serving

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/end_session", self.end_session),
        ])  # fmt: skip


class Served:
    """A fake issuer answering on a loopback port until `stop`."""

    def __init__(self, issuer: FakeIssuer, port: int) -> None:
        issuer.url = f"http://127.0.0.1:{port}"
        self.issuer = issuer
        config = uvicorn.Config(issuer.app(), host="127.0.0.1", port=port, log_level="warning",
                                access_log=False, lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake OpenID Connect issuer did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
