"""How text that identifies something is compared: the forms of one character that look the same
folded into one, so that a number written twice is one number."""

from __future__ import annotations

import unicodedata

# Characters no one prints (zero-width spaces and joiners, soft hyphens, direction marks).
INVISIBLE_CATEGORY = "Cf"


def folded(text: str) -> str:
    """`text` with compatibility forms folded (NFKC: a full-width "ＩＮＶ－１" is "INV-1", a
    no-break space a space) and every invisible character dropped ("INV-1\u200b" is "INV-1").
    Case, punctuation and visible blanks are kept."""
    return "".join(
        c for c in unicodedata.normalize("NFKC", text)
        if unicodedata.category(c) != INVISIBLE_CATEGORY
    )  # fmt: skip
