"""Who is calling: HS256 bearer tokens as api.md states them, and role checks as dependencies."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from shared.contracts import unstorable_text
from shared.problems import forbidden, not_found, unauthorized

ROLES = frozenset({"policyholder", "underwriter", "claims_handler", "collector", "bank", "service"})
PARTY_ROLES = frozenset({"policyholder", "bank"})
MAX_SUBJECT_LENGTH = 200  # the `created_by` columns
MAX_PARTY_ID_LENGTH = 64  # the `policyholder_id`, `bank_id` and `creditor_id` columns
STAFF_ROLES = frozenset({"underwriter", "claims_handler", "collector", "service"})
ALGORITHM = "HS256"
DEFAULT_MAX_TTL_SECONDS = 86_400  # TCI_MAX_TOKEN_TTL_SECONDS


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: subject, role and, for a policyholder or a bank, its party id."""

    subject: str
    role: str
    party_id: str | None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def scope(self) -> str:
        """The identity idempotency keys are scoped to: a policyholder or a bank is its party,
        whichever of its tokens it sends (a partner that renews its token and then retries is
        the same caller, and its key still protects it); anyone else is its subject."""
        if self.role in PARTY_ROLES and self.party_id:
            return f"{self.role}::{self.party_id}"
        return f"{self.role}:{self.subject}:{self.party_id or ''}"


def decode_token(
    token: str,
    secret: str,
    *,
    leeway_seconds: int = 30,
    max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS,
    now: float | None = None,
) -> Caller:
    """The caller a token names, or a 401 problem saying why it is refused."""
    return _verify(token, secret, leeway_seconds, max_ttl_seconds, now)[0]


def _is_number(value: Any) -> bool:
    """A finite number of seconds: an int or a float, not a boolean; an integer too large for a
    float (10**400) is none, as infinity is."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _verify(
    token: str, secret: str, leeway_seconds: int, max_ttl_seconds: int, now: float | None = None
) -> tuple[Caller, float]:
    """The caller a token names and when the token expires (epoch seconds). Every claim is
    checked for its type: `exp` (and `iat`, `nbf`) a number, `sub`, `role`, `party_id` strings;
    a token whose `exp` lies further ahead than `max_ttl_seconds` is refused."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("the bearer token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise unauthorized(f"only {ALGORITHM} tokens are accepted")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway_seconds,
            options={"require": ["exp", "sub"], "verify_aud": False, "verify_exp": False,
                     "verify_iat": False, "verify_nbf": False},
        )  # fmt: skip
    except jwt.InvalidSignatureError:
        raise unauthorized("the bearer token's signature is not valid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise unauthorized(f"the bearer token has no {exc.claim!r} claim") from None
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError):
        raise unauthorized("the bearer token is not valid") from None
    if not isinstance(claims, dict):
        raise unauthorized("the bearer token is not valid")
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_number(claims[name]):
            raise unauthorized(
                f"the bearer token's {name!r} claim must be a finite number of "
                "seconds since the epoch"
            )
    current = time.time() if now is None else now
    expires = float(claims["exp"])
    if expires + leeway_seconds < current:
        raise unauthorized("the bearer token has expired")
    if expires - current > max_ttl_seconds + leeway_seconds:
        raise unauthorized(
            f"the bearer token expires more than {max_ttl_seconds} seconds ahead; "
            "ask for a shorter-lived token"
        )
    if "nbf" in claims and float(claims["nbf"]) - leeway_seconds > current:
        raise unauthorized("the bearer token is not valid yet")
    return _caller_of(claims), expires


def _caller_of(claims: dict[str, Any]) -> Caller:
    """Who a verified token names: `sub` and `role` strings (a known role), `party_id` a string
    for a policyholder or a bank; each as text its column holds."""
    subject, role, party_id = claims.get("sub"), claims.get("role"), claims.get("party_id")
    if not isinstance(subject, str) or not subject:
        raise unauthorized("the bearer token's 'sub' claim must be a non-empty string")
    if role is None:
        raise unauthorized("the bearer token has no 'role' claim")
    if not isinstance(role, str) or role not in ROLES:
        raise unauthorized(
            f"the bearer token's 'role' claim must be one of {', '.join(sorted(ROLES))}"
        )
    if party_id is not None and (not isinstance(party_id, str) or not party_id):
        raise unauthorized("the bearer token's 'party_id' claim must be a non-empty string")
    if role in PARTY_ROLES and party_id is None:
        raise unauthorized(f"a {role} token must carry a 'party_id' claim")
    for name, value, longest in (("sub", subject, MAX_SUBJECT_LENGTH),
                                 ("party_id", party_id, MAX_PARTY_ID_LENGTH)):  # fmt: skip
        # Who the caller is gets written down (created_by, ownership): text the columns hold.
        if value is not None and (len(value) > longest or unstorable_text(value)):
            raise unauthorized(
                f"the bearer token's {name!r} claim must be text of at most {longest} characters, "
                "without NUL or lone surrogates"
            )
    return Caller(subject=subject, role=role, party_id=party_id)


def mint_token(
    secret: str,
    *,
    role: str,
    party_id: str | None = None,
    ttl_seconds: int = 3600,
    subject: str | None = None,
    now: float | None = None,
) -> str:
    """A signed development token."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {sorted(ROLES)}")
    if role in PARTY_ROLES and not party_id:
        raise ValueError(f"a {role} token needs --party")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": subject or f"{role}-{uuid.uuid4().hex[:8]}",
        "role": role,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if party_id:
        claims["party_id"] = party_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class VerifiedTokens:
    """Bearer tokens already verified, so that a client reusing its token (the usual case) is not
    verified again on every request: signature and claims are checked once per token, its expiry
    on every use. Refused tokens are never kept; the oldest entries go first when full."""

    def __init__(
        self,
        secret: str,
        *,
        leeway_seconds: int = 30,
        max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS,
        size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.leeway_seconds = leeway_seconds
        self.max_ttl_seconds = max_ttl_seconds
        self.size = size
        self.clock = clock
        self._known: dict[str, tuple[Caller, float]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def caller(self, token: str) -> Caller:
        known = self._known.get(token)
        if known is not None:
            caller, expires = known
            if self.clock() <= expires + self.leeway_seconds:
                return caller
            del self._known[token]
            raise unauthorized("the bearer token has expired")
        caller, expires = _verify(
            token, self.secret, self.leeway_seconds, self.max_ttl_seconds, self.clock()
        )
        if len(self._known) >= self.size:
            for stale in list(self._known)[: self.size // 4]:
                del self._known[stale]
        self._known[token] = (caller, expires)
        return caller


async def authenticate(request: Request) -> Caller:
    """The caller of this request, from its `Authorization: Bearer` header."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    tokens: VerifiedTokens = request.app.state.tokens
    return tokens.caller(token.strip())


CallerDep = Annotated[Caller, Depends(authenticate)]


def require(*roles: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting the given roles (and the `service` role, which may call anything).
    It reads the caller itself, rather than depending on `CallerDep`: one dependency fewer to
    solve on every request."""
    allowed = frozenset(roles) | {"service"}

    async def _check(request: Request) -> Caller:
        caller = await authenticate(request)
        if caller.role not in allowed:
            raise forbidden(f"the {caller.role} role may not call this route")
        return caller

    return _check


def ensure_party(caller: Caller, owner_id: str | None, what: str, ident: str) -> None:
    """A policyholder or bank sees only what is its own; anything else is indistinguishable from
    an id that does not exist (404)."""
    if caller.role in PARTY_ROLES and caller.party_id != owner_id:
        raise not_found(what, ident)
