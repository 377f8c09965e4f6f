"""ISO 3166-1 alpha-2 country codes."""

from __future__ import annotations

from functools import lru_cache

import pycountry


class CountryError(ValueError):
    """A code that is not an ISO 3166-1 alpha-2 country."""


@lru_cache(maxsize=1)
def _alpha_2() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


def country_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code."""
    return _alpha_2()


def is_country(code: str) -> bool:
    return code in _alpha_2()


def country_code(code: str) -> str:
    """The upper-case alpha-2 code, or CountryError if it names no country."""
    normalised = code.strip().upper()
    if len(normalised) != 2 or not is_country(normalised):
        raise CountryError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return normalised
