"""Values the services hand out and must recognise when they come back (a list's cursor): a MAC
made with a key derived from the JWT secret every replica shares, one key per purpose, so that a
value signed for one purpose is never valid for another."""

from __future__ import annotations

import base64
import hashlib
import hmac

# Bytes of the HMAC-SHA256 kept in a signed value: 96 bits, short in a URL, not forgeable.
MAC_BYTES = 12


def mac(secret: str, purpose: str, value: str) -> str:
    """The URL-safe (unpadded base64) MAC of `value` for one purpose."""
    key = hmac.new(secret.encode(), f"tci-signing:{purpose}".encode(), hashlib.sha256).digest()
    digest = hmac.new(key, value.encode(), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, purpose: str, value: str) -> str:
    """`value.mac` (`value` itself URL-safe and without a dot)."""
    return f"{value}.{mac(secret, purpose, value)}"


def verified(secret: str, purpose: str, signed: str) -> str | None:
    """The value `sign` signed for this purpose, or None when `signed` is not such a value."""
    value, dot, given = signed.rpartition(".")
    if not dot or not hmac.compare_digest(given.encode(), mac(secret, purpose, value).encode()):
        return None
    return value
