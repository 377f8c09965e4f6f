"""The console's settings: the services' own (peer URLs, JWT secret, environment), its port, and
the insurer's OpenID Connect provider staff sign in with outside development."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from shared.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost"})


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSettings(Settings):
    """What the console reads from its environment, beside every service's settings."""

    console_port: int = Field(
        8000, alias="TCI_CONSOLE_PORT", ge=1, le=65535, description="the console's port"
    )
    console_session_ttl_seconds: int = Field(
        1800,
        alias="TCI_CONSOLE_SESSION_TTL_SECONDS",
        ge=60,
        description="how long a console sign-in (its token and session cookie) lasts",
    )
    # The referral queue, the claims and the cases lists read at most this many items.
    console_list_limit: int = Field(200, alias="TCI_CONSOLE_LIST_LIMIT", ge=1, le=500)
    console_oidc_issuer: str = Field(
        "",
        alias="TCI_CONSOLE_OIDC_ISSUER",
        description="the insurer's OpenID Connect issuer staff sign in with (its discovery document at `<issuer>/.well-known/openid-configuration`); https outside development unless on loopback; empty: no OpenID Connect sign-in",
    )
    console_oidc_client_id: str = Field(
        "",
        alias="TCI_CONSOLE_OIDC_CLIENT_ID",
        description="the console's client id at the OpenID Connect provider",
    )
    console_oidc_client_secret: SecretStr | None = Field(
        None,
        alias="TCI_CONSOLE_OIDC_CLIENT_SECRET",
        description="the console's client secret at the OpenID Connect provider",
    )
    console_oidc_scopes: str = Field(
        "openid profile email",
        alias="TCI_CONSOLE_OIDC_SCOPES",
        description="the scopes the console asks the provider for (space-separated; `openid` is always asked)",
    )
    console_oidc_role_claim: str = Field(
        "tci_role",
        alias="TCI_CONSOLE_OIDC_ROLE_CLAIM",
        min_length=1,
        description="the ID-token claim naming the person's console role (`underwriter`, `claims_handler`, `collector`; a string, or a list holding exactly one of them)",
    )
    console_oidc_subject_claim: str = Field(
        "sub",
        alias="TCI_CONSOLE_OIDC_SUBJECT_CLAIM",
        min_length=1,
        description="the ID-token claim the person is recorded by in the services (`created_by`, decisions); it must be stable and unique at the provider, e.g. `sub` or `preferred_username`",
    )
    console_oidc_redirect_url: str = Field(
        "",
        alias="TCI_CONSOLE_OIDC_REDIRECT_URL",
        description="the callback URL registered at the provider (`https://<console>/sign-in/callback`); empty: this console's own address as the request reached it",
    )

    @model_validator(mode="after")
    def _oidc_complete(self) -> ConsoleSettings:
        given = {
            "TCI_CONSOLE_OIDC_ISSUER": self.console_oidc_issuer,
            "TCI_CONSOLE_OIDC_CLIENT_ID": self.console_oidc_client_id,
            "TCI_CONSOLE_OIDC_CLIENT_SECRET": self.oidc_client_secret,
        }
        missing = [name for name, value in given.items() if not value]
        if missing and len(missing) < len(given):
            raise ValueError(f"OpenID Connect sign-in also needs {', '.join(missing)}")
        if self.console_oidc_issuer:
            issuer = urlsplit(self.console_oidc_issuer)
            if issuer.scheme not in ("https", "http") or not issuer.hostname:
                raise ValueError("TCI_CONSOLE_OIDC_ISSUER must be an https URL")
            if (self.environment != "development" and issuer.scheme != "https"
                    and not _loopback(issuer.hostname)):  # fmt: skip
                raise ValueError("TCI_CONSOLE_OIDC_ISSUER must be https outside development")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies are marked Secure outside development (a development console runs on http)."""
        return self.environment != "development"

    @property
    def oidc_client_secret(self) -> str:
        secret = self.console_oidc_client_secret
        return secret.get_secret_value() if secret is not None else ""

    @property
    def oidc_configured(self) -> bool:
        """Staff sign in through the insurer's OpenID Connect provider (issuer, client id and
        secret all given)."""
        return bool(self.console_oidc_issuer)
