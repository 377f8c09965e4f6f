"""The console's settings: the services' own (peer URLs, JWT secret, environment) and its port."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


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

    @property
    def secure_cookies(self) -> bool:
        """Cookies are marked Secure outside development (a development console runs on http)."""
        return self.environment != "development"
