"""Text that identifies something: one number however its characters were written."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.contracts import INVOICE_NUMBER_LENGTH, InvoiceNumber
from shared.text import folded

NUMBER = TypeAdapter(InvoiceNumber)


@pytest.mark.parametrize(("written", "number"), [
    ("INV-1", "INV-1"), (" INV-1 ", "INV-1"), ("INV-1\u200b", "INV-1"), ("\ufeffINV-1", "INV-1"),
    ("ＩＮＶ－１", "INV-1"), ("INV\u2060-1", "INV-1"), ("INV\u00a01", "INV 1"), ("inv-1", "inv-1"),
    ("INV 1", "INV 1"), ("INV-01", "INV-01"), ("ﬁ-7", "fi-7"),
])  # fmt: skip
def test_an_invoice_number_is_folded_to_one_form(written: str, number: str) -> None:
    assert NUMBER.validate_python(written) == number


@pytest.mark.parametrize("written", ["\u200b", " \u2060 ", "", "INV\n1", "INV\x1b[2J"])
def test_an_invoice_number_with_nothing_visible_or_a_control_character_is_refused(
    written: str,
) -> None:
    with pytest.raises(ValidationError):
        NUMBER.validate_python(written)


def test_a_number_that_folding_makes_longer_than_its_column_is_refused() -> None:
    """NFKC may lengthen text (one ligature, several letters): the column's length still holds."""
    assert len(folded("\ufdfa")) > 1
    with pytest.raises(ValidationError):
        NUMBER.validate_python("\ufdfa" * (INVOICE_NUMBER_LENGTH // 2))
