"""Pydantic types and models that cross a service boundary: money, countries, dates, text.

What the database can hold is one rule for every request, kept here:
- text: no NUL character and no lone surrogate (neither can be stored as UTF-8), checked for every
  string of every `Schema` model, and by `refuse_unstorable_parameters` for every query and path
  parameter and every multipart field and file name;
- free text a person reads (names, numbers, notes, reasons): no control characters, which are
  never data and some of which a terminal or a log viewer obeys (`ESC [2J` clears a screen):
  single-line text (`NameText`, `ShortText`, `InvoiceNumber`, file names) none of C0, DEL and
  C1, multi-line text (`Text`, `LongText`) none of them but tab, line feed and carriage return;
- decimals (`ExactDecimal`, `Percent`, money amounts): finite, less than 10^14 in absolute value
  (an `Amount` column holds 16 integer digits on PostgreSQL, and about 9.2 × 10^14 as a scaled
  64-bit integer on SQLite: room left for sums), at most `MAX_DECIMAL_PLACES` decimals; a decimal
  string is taken when its published pattern takes it (no more written decimals than the pattern
  allows, trailing zeros included), and a money amount is a string, without leading zeros, with
  no more written decimals than its currency's minor unit (domain.md: money never carries more);
- integers: within a 64-bit column for every model, and `Count` within a 32-bit INTEGER column;
- business dates (`Date`): from `MIN_DATE` to `MAX_DATE`, so that deadlines computed from them
  (a due date + 180 days, say) are still dates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from fastapi import Request
from fastapi.params import Form
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, to_json
from starlette.datastructures import UploadFile

from shared.countries import country_codes, is_country
from shared.money import (
    Money,
    MoneyError,
    currency_codes,
    decimals_of,
    is_currency,
    minor_units,
    parse_amount,
    shown,
)
from shared.problems import invalid
from shared.text import folded

MAX_INTEGER_DIGITS = 14  # decimals on the wire are less than 10^14 in absolute value
MAX_DECIMAL_PLACES = 12  # and carry at most 12 decimals (trailing zeros aside)
MAX_SHARE_DECIMAL_PLACES = 200  # an exact share: "any number of decimals", within reason
MAX_BIG_INTEGER = 2**63 - 1  # what a BIGINT (and SQLite's INTEGER) holds
MAX_COUNT = 2**31 - 1  # what an INTEGER column holds
MIN_DATE = dt.date(1900, 1, 1)  # business dates: invoices, shipments, events, payments …
MAX_DATE = dt.date(2999, 12, 31)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # api.md: dates are `YYYY-MM-DD`
MAX_FILENAME_LENGTH = 255


def unstorable_text(value: str) -> str | None:
    """Why `value` cannot be stored as text (a NUL, a lone surrogate), or None if it can."""
    if "\x00" in value:
        return "text must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (no lone surrogate characters)"
    return None


# Control characters: C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F, where U+009B is a
# terminal's escape sequence in one character) in a single line of text; in text of several
# lines, the same but tab, line feed and carriage return.
_SINGLE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MULTI_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_characters(value: str, multi_line: bool = False) -> str | None:
    """Why `value` is not text a person reads (a control character), or None if it is."""
    if multi_line:
        if _MULTI_LINE_CONTROL.search(value):
            return "text must not contain control characters (tab and line breaks aside)"
    elif _SINGLE_LINE_CONTROL.search(value):
        return "a single line of text must not contain control characters (not even a tab)"
    return None


def single_line(value: str) -> str:
    """Storable text of one line: no control character at all."""
    reason = unstorable_text(value) or control_characters(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _multi_line(value: str) -> str:
    """Storable text of several lines: no control character but tab and line breaks."""
    reason = unstorable_text(value) or control_characters(value, multi_line=True)
    if reason is not None:
        raise ValueError(reason)
    return value


def _unstorable(value: Any, loc: tuple[str | int, ...]) -> Iterator[InitErrorDetails]:
    """The strings and integers in a request value (lists walked; nested models check their own
    fields) that no column can hold."""
    if isinstance(value, str):
        reason = unstorable_text(value)
        if reason is not None:
            yield InitErrorDetails(
                type=PydanticCustomError("unstorable_text", reason), loc=loc, input=""
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_BIG_INTEGER <= value <= MAX_BIG_INTEGER:
            msg = "the number is out of range (at most 2^63 - 1 in absolute value)"
            yield InitErrorDetails(
                type=PydanticCustomError("number_out_of_range", msg), loc=loc, input=""
            )
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _unstorable(item, (*loc, index))


def date_input(value: Any) -> Any:
    """A date on the wire is a `YYYY-MM-DD` string: a number is not read as a Unix time, nor a
    timestamp as its day."""
    if (isinstance(value, str) and ISO_DATE.fullmatch(value)) or isinstance(value, dt.date):
        return value
    raise ValueError("a date is sent as a YYYY-MM-DD string")


def _storable_date(value: dt.date) -> dt.date:
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(
            f"a date from {MIN_DATE.isoformat()} to {MAX_DATE.isoformat()} is expected"
        )
    return value


def _bounded_decimal(value: Decimal, places: int = MAX_DECIMAL_PLACES) -> Decimal:
    """A decimal the columns and the arithmetic can hold (see the module's docstring)."""
    if not value.is_finite():
        raise ValueError("a finite decimal is expected")
    if value.is_zero():
        return value
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"the amount must be less than 10^{MAX_INTEGER_DIGITS} in absolute value")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places and decimals_of(value) > places:  # trailing zeros do not count
        raise ValueError(f"at most {places} decimals are accepted")
    return value


def bounded_total(amounts: Iterable[Decimal], what: str) -> Decimal:
    """The sum of amounts that an answer shows as an amount of its own (a claim's reductions, a
    case's outstanding debt): less than 10^14 in absolute value, like every amount on the wire
    (ValueError otherwise)."""
    total = sum(amounts, Decimal(0))
    if not total.is_zero() and total.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"{what} must add up to less than 10^{MAX_INTEGER_DIGITS}")
    return total


def plain_decimal(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing fractional zeros ("90", "0.35")."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(
            f"{shown(value, 10)} is not an ISO 4217 currency code (upper case, such as EUR)"
        )
    return value


def _country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code as the standard writes it and the published enum lists it:
    upper case ("de" is refused, as "eur" is for a currency)."""
    if not is_country(value):
        raise ValueError(
            f"{shown(value, 10)} is not an ISO 3166-1 alpha-2 country code (upper case, such as DE)"
        )
    return value


# Free text of several lines (a note, a reason, details): tab and line breaks are kept.
Text = Annotated[str, AfterValidator(_multi_line)]
# A single line (a name, a number, a reference): no control character.
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(single_line)]
# A name: short text with at least one character that is not white space (kept as written).
NameText = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"\S"), AfterValidator(single_line)
]
LongText = Annotated[str, Field(max_length=4000), AfterValidator(_multi_line)]
INVOICE_NUMBER_LENGTH = 100


def fold_invoice_number(value: str) -> str:
    """An invoice number as every service keys it (declarations, coverage checks, notifications,
    claims, disputes, collection cases): written forms of one character folded into one and
    invisible ones dropped (`shared.text.folded`: "ＩＮＶ－１" and "INV-1​" are "INV-1"),
    surrounding blanks trimmed; case and the blanks inside kept. Empty when nothing visible is
    left."""
    number = folded(single_line(value)).strip()
    if len(number) > INVOICE_NUMBER_LENGTH:
        raise ValueError(f"at most {INVOICE_NUMBER_LENGTH} characters once folded")
    return number


def _present_invoice_number(value: str) -> str:
    number = fold_invoice_number(value)
    if not number:
        raise ValueError("an invoice number has at least one visible character")
    return number


# An invoice is known by its number as `fold_invoice_number` folds it, never empty: one invoice
# however its number was written, so it is claimed, notified and declared once.
InvoiceNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=INVOICE_NUMBER_LENGTH, pattern=r"\S"
    ),
    AfterValidator(_present_invoice_number),
]
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# How these types are published in OpenAPI: one string schema each, the same for requests and
# answers (a generated client sends and reads strings, never floats); the country and currency
# lists are named components (`CountryCode`, `CurrencyCode`) so that a client has one enum each.
_DIGITS = rf"-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}"
DECIMAL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "decimal",
    "pattern": rf"^{_DIGITS}(\.[0-9]{{1,{MAX_DECIMAL_PLACES}}})?$",
    "examples": ["0.35"],
}
# Money: at most 4 decimals (the most any ISO 4217 minor unit has; each currency's own is checked),
# written without leading zeros ("0.5", never "00.5"; "100", never "0100").
MINOR_UNITS_AT_MOST = 4
_FRACTION = rf"(\.[0-9]{{1,{MINOR_UNITS_AT_MOST}}})?"
_WHOLE = rf"(0|[1-9][0-9]{{0,{MAX_INTEGER_DIGITS - 1}}})"
# A fraction above zero of 1 to MINOR_UNITS_AT_MOST digits: its first digit that is not 0 comes
# after `zeros` zeros (JSON Schema patterns have no lookahead).
_POSITIVE_FRACTION = "|".join(
    "0" * zeros + "[1-9]" + (f"[0-9]{{0,{MINOR_UNITS_AT_MOST - 1 - zeros}}}"
                             if zeros < MINOR_UNITS_AT_MOST - 1 else "")
    for zeros in range(MINOR_UNITS_AT_MOST)
)  # fmt: skip
AMOUNT_SCHEMA: dict[str, Any] = {
    **DECIMAL_SCHEMA,
    "pattern": rf"^-?{_WHOLE}{_FRACTION}$",
    "description": "a decimal string with at most the currency's minor-unit decimals",
    "examples": ["125000.00"],
}
POSITIVE_AMOUNT_SCHEMA: dict[str, Any] = {
    **AMOUNT_SCHEMA,
    "pattern": rf"^([1-9][0-9]{{0,{MAX_INTEGER_DIGITS - 1}}}{_FRACTION}"
    rf"|0\.({_POSITIVE_FRACTION}))$",
    "description": "a decimal string above zero, with at most the currency's minor-unit decimals",
}
NON_NEGATIVE_AMOUNT_SCHEMA: dict[str, Any] = {
    **AMOUNT_SCHEMA,
    "pattern": rf"^{_WHOLE}{_FRACTION}$",
    "description": "a decimal string, zero or more, with at most the currency's minor-unit "
    "decimals",
}


def percent_schema(places: int) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "decimal",
        "pattern": rf"^(100(\.0{{1,{places}}})?|[0-9]{{1,2}}(\.[0-9]{{1,{places}}})?)$",
        "description": "a percentage from 0 to 100, as a decimal string",
        "examples": ["90"],
    }


def _decimal_reader(
    schema: dict[str, Any], places: int, what: str, low: int | None = None, high: int | None = None,
    as_string: str | None = None,
) -> Callable[[Any], Any]:  # fmt: skip
    """The input of a decimal published as `schema`: a string is taken when the published
    pattern takes it (the schema and the server agree), an integer (unless `as_string` says how
    it is sent instead) or a Decimal (from code) when it is a decimal the columns hold; a float
    never. A value outside `low`..`high` is left to the field's own bounds, which say so."""
    written = re.compile(schema["pattern"])

    def read(value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('a decimal is sent as a string such as "0.35", never as a float')
        if as_string is not None and isinstance(value, int):  # bool included
            raise ValueError(as_string)
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                number = _bounded_decimal(parse_amount(value), places)
            except MoneyError as exc:
                raise ValueError(str(exc)) from None
            within = (low is None or number >= low) and (high is None or number <= high)
            if within and isinstance(value, str) and not written.fullmatch(value):
                raise ValueError(f"{shown(value)} is not {what}")
            return number
        if isinstance(value, Decimal):
            return _bounded_decimal(value, places)
        return value

    return read


_decimal_input = _decimal_reader(
    DECIMAL_SCHEMA, MAX_DECIMAL_PLACES,
    f"a decimal with at most {MAX_INTEGER_DIGITS} digits before the point and "
    f"{MAX_DECIMAL_PLACES} after it",
)  # fmt: skip


# api.md: percentages are decimal strings in percent units.
PERCENT_AS_STRING = 'a percentage is sent as a string, e.g. "90" or "0.35"'


def percent_input(places: int) -> Callable[[Any], Any]:
    """The input of a percentage published as `percent_schema(places)`."""
    return _decimal_reader(
        percent_schema(places), places,
        f"a percentage written with at most {places} decimals (no sign, no leading zeros "
        "before 100)", 0, 100, as_string=PERCENT_AS_STRING,
    )  # fmt: skip


AMOUNT_AS_STRING = 'an amount is sent as a string, e.g. "5.00"'
_AMOUNT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def _amount_input(value: Any) -> Any:
    """A money amount: a decimal string without leading zeros (api.md: an amount is a decimal
    string; a JSON number is refused), or a Decimal from code."""
    if isinstance(value, str):
        try:
            number = _bounded_decimal(parse_amount(value))
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        if not _AMOUNT_TEXT.fullmatch(value):
            raise ValueError(f"{shown(value)} is written with leading zeros: an amount has none")
        return number
    if isinstance(value, int | float):  # bool included
        raise ValueError(AMOUNT_AS_STRING)
    if isinstance(value, Decimal):
        return _bounded_decimal(value)
    return value


def _unsigned_amount_input(value: Any) -> Any:
    """An amount that may not be negative: as written, without a sign ("-0" is refused, as the
    published pattern refuses it)."""
    number = _amount_input(value)
    if isinstance(value, str) and value.startswith("-"):
        raise ValueError("must not be negative")
    return number


def _written_decimals(text: str) -> int:
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


# Dates as the columns hold them: from MIN_DATE to MAX_DATE (years 1900 to 2999).
DATE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "date",
    "pattern": r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
}


COMPONENT_MARK = "x-component"


def _ref(component: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A schema published once, as the named component `component`, and referred to wherever it
    is used (pydantic resolves every `$ref` it meets, so the schema carries a mark here and
    `refer_to_components` turns it into a reference once the document is built)."""
    return {**schema, "title": component, COMPONENT_MARK: component}


def component_ref(component: str) -> WithJsonSchema:
    """A field published as a reference to a component the app adds to the document itself
    (`Problem`, say: see `shared.problems.problem_components`)."""
    return WithJsonSchema({"type": "object", COMPONENT_MARK: component})


def named_enum(component: str, values: Any, description: str = "") -> WithJsonSchema:
    """A string field published as the named enum `component`: `values` a `Literal` or a
    sequence of strings (the field's own validation is unchanged)."""
    choices = list(get_args(values)) if get_args(values) else list(values)
    schema: dict[str, Any] = {"type": "string", "enum": choices}
    if description:
        schema["description"] = description
    return WithJsonSchema(_ref(component, schema))


def _meaning(schema: dict[str, Any]) -> dict[str, Any]:
    """What a schema says of its values (what a field adds, its title, default..., aside)."""
    return {k: v for k, v in schema.items()
            if k not in ("title", "description", "examples", "default")}  # fmt: skip


def refer_to_components(node: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Swap every marked schema of the OpenAPI document (in place) for a `$ref` to its named
    component; answer the components found, to be added to the document."""
    found = {} if found is None else found
    if isinstance(node, dict):
        component = node.get(COMPONENT_MARK)
        if isinstance(component, str):
            schema = {k: v for k, v in node.items() if k != COMPONENT_MARK}
            before = found.get(component)
            if before is not None and _meaning(before) != _meaning(schema):  # one name, one meaning
                raise ValueError(
                    f"two different schemas are published as {component!r}: "
                    f"{_meaning(before)} and {_meaning(schema)}"
                )
            found[component] = schema
            node.clear()
            node["$ref"] = f"#/components/schemas/{component}"
        else:
            for value in node.values():
                refer_to_components(value, found)
    elif isinstance(node, list):
        for value in node:
            refer_to_components(value, found)
    return found


_COUNTRY = _ref("CountryCode", {"type": "string", "enum": sorted(country_codes()),
                                "description": "an ISO 3166-1 alpha-2 country code"})  # fmt: skip
_CURRENCY = _ref("CurrencyCode", {"type": "string", "enum": sorted(currency_codes()),
                                  "description": "an ISO 4217 currency code"})  # fmt: skip
CurrencyCode = Annotated[str, AfterValidator(_currency), WithJsonSchema(_CURRENCY)]
CountryCode = Annotated[str, AfterValidator(_country), WithJsonSchema(_COUNTRY)]
ExactDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_input),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
    WithJsonSchema(DECIMAL_SCHEMA),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(percent_input(MAX_DECIMAL_PLACES)),
    Field(ge=0, le=100),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
    WithJsonSchema(percent_schema(MAX_DECIMAL_PLACES)),
]
# A percentage that is kept exactly (the insurer's share of recoveries): any number of decimals,
# up to a length no real proportion needs.
ExactPercent = Annotated[
    Decimal,
    BeforeValidator(percent_input(MAX_SHARE_DECIMAL_PLACES)),
    Field(ge=0, le=100),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
    WithJsonSchema(percent_schema(MAX_SHARE_DECIMAL_PLACES)),
]
Date = Annotated[
    dt.date,
    BeforeValidator(date_input),
    AfterValidator(_storable_date),
    WithJsonSchema(DATE_SCHEMA),
]


def at_most_decimals(places: int) -> AfterValidator:
    """A decimal with at most `places` decimals (an `Exact(…, places)` column's scale)."""

    def check(value: Decimal) -> Decimal:
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
        if -(exponent + trailing) > places:
            raise ValueError(f"at most {places} decimals are accepted")
        return value

    return AfterValidator(check)


# Integers in request bodies are JSON integers: not `true`, `"3"` or `3.0` (pydantic's lax mode
# would take them).
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
# So are booleans: `true` or `false`, not `"yes"`, `"on"` or `1`.
Flag = Annotated[bool, Strict()]


class Schema(BaseModel):
    """Request and response models: unknown fields are refused; every string must be storable
    text and every integer must fit a 64-bit column (each refusal names its field)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if isinstance(data, dict) and not _plainly_storable(data.values()):
            errors = [e for k, v in data.items() for e in _unstorable(v, (str(k),))]
            if errors:
                raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def _plainly_storable(values: Iterable[Any]) -> bool:
    """True when every value is plainly storable (ASCII text with no NUL, an integer in range,
    anything else left to its own model), the quick test run on every request model; False
    sends the values to `_unstorable`, which says exactly what is wrong, if anything."""
    for value in values:
        kind = type(value)
        if kind is str:
            if "\x00" in value or not value.isascii():
                return False
        elif kind is int:
            if not -MAX_BIG_INTEGER <= value <= MAX_BIG_INTEGER:
                return False
        elif kind is list or kind is tuple:
            if not _plainly_storable(value):
                return False
        elif isinstance(value, str | int | list | tuple) and kind is not bool:
            return False  # a subclass: the thorough walk decides
    return True


def _check_parameter(where: str, name: str, value: str, dates: frozenset[str]) -> None:
    reason = unstorable_text(value)
    if reason is None and name in dates:
        if not ISO_DATE.fullmatch(value):
            raise invalid([where, name], "a date is sent as a YYYY-MM-DD string")
        try:
            _storable_date(dt.date.fromisoformat(value))
        except ValueError as exc:  # a malformed date is left to the route's own validation
            reason = str(exc) if "is expected" in str(exc) else None
    if reason is not None:
        raise invalid([where, name], reason)


def _date_parameters(route: Any) -> frozenset[str]:
    """The names (aliases) of a route's query and path parameters that are dates."""
    names: set[str] = set()
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        for field in (*dependant.query_params, *dependant.path_params):
            annotation = field.field_info.annotation
            if dt.date in (annotation, *get_args(annotation)):
                names.add(field.alias)
        pending.extend(dependant.dependencies)
    return frozenset(names)


async def refuse_unstorable_parameters(request: Request) -> None:
    """The one check of what reaches a route outside a JSON body: query and path parameters,
    multipart fields and uploaded files' names must be storable text, date-shaped parameters
    business dates, file names at most `MAX_FILENAME_LENGTH` characters (a 422 naming each)."""
    route = request.scope.get("route")
    has_parameters = bool(request.query_params) or bool(request.path_params)
    dates = _date_parameters(route) if has_parameters else frozenset()
    for name, value in request.query_params.multi_items():
        _check_parameter("query", name, value, dates)
    for name, value in request.path_params.items():
        if isinstance(value, str):
            _check_parameter("path", name, value, dates)
    body_field = getattr(route, "body_field", None)
    if body_field is None or not isinstance(body_field.field_info, Form):
        return
    form = await request.form()  # already read (and kept) by FastAPI for this route
    for name, item in form.multi_items():
        if isinstance(item, UploadFile):
            filename = item.filename or ""
            reason = unstorable_text(filename) or control_characters(filename)
            if reason is None and len(filename) > MAX_FILENAME_LENGTH:
                reason = f"a file name has at most {MAX_FILENAME_LENGTH} characters"
            if reason is not None:
                raise invalid(["body", name, "filename"], reason)
        else:
            _check_parameter("body", name, item, frozenset())


class MoneyModel(Schema):
    """Money on the wire: `{"amount": "125000.00", "currency": "EUR"}`."""

    amount: Annotated[Decimal, BeforeValidator(_amount_input), WithJsonSchema(AMOUNT_SCHEMA)]
    currency: CurrencyCode

    @field_serializer("amount", when_used="json")
    def _amount(self, amount: Decimal) -> str:
        return Money(amount, self.currency).rounded_text()

    @model_validator(mode="wrap")
    @classmethod
    def _minor_units(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Money never carries more decimals than its currency's minor unit (domain.md): an
        amount sent as a string counts the decimals written ("1.000" EUR is refused), one from
        code (a Decimal) those that are not trailing zeros."""
        money = handler(data)
        exponent = money.amount.as_tuple().exponent
        units = minor_units(money.currency)
        if isinstance(exponent, int) and -exponent <= units:
            return money  # no more decimals than the currency's minor unit, even with zeros
        written = data.get("amount") if isinstance(data, dict) else None
        if isinstance(written, str) and _written_decimals(written) > units:
            raise ValueError(
                f"{money.currency} amounts carry at most {units} decimals, got {shown(written)}"
            )
        try:
            Money.of(money.amount, money.currency)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        return money

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)

    @classmethod
    def of(cls, money: Money) -> MoneyModel:
        rounded = money.rounded()
        return cls.model_construct(amount=rounded.amount, currency=rounded.currency)


def money_json(money: Money) -> dict[str, str]:
    """Money exactly as a MoneyModel goes on the wire, for answers built without a model."""
    return {"amount": money.rounded_text(), "currency": money.currency}


def rounded_money_json(money: Money) -> dict[str, str]:
    """`money_json` of money already rounded to its currency's minor unit (quantized by
    `Money.rounder`): written as it is, not rounded a second time (a coverage batch writes 40,000
    amounts)."""
    return {"amount": str(money.amount), "currency": money.currency}


def json_data(answer: Any) -> bytes:
    """An answer built without a model, as plain JSON data (strings, numbers, lists, dates and
    moments), written as pydantic writes a model's answer: its moments in UTC as `…Z`."""
    return to_json(answer)


class _BoundedMoney(MoneyModel):
    @model_validator(mode="before")
    @classmethod
    def _from_money(cls, data: Any) -> Any:
        """Accept plain `MoneyModel` (a sender builds its messages from money read back)."""
        if isinstance(data, MoneyModel) and not isinstance(data, cls):
            return {"amount": data.amount, "currency": data.currency}
        return data


class PositiveMoney(_BoundedMoney):
    """Money that must be more than zero (an invoice, a limit, a payment)."""

    amount: Annotated[
        Decimal, BeforeValidator(_amount_input), WithJsonSchema(POSITIVE_AMOUNT_SCHEMA)
    ]

    @field_validator("amount")
    @classmethod
    def _positive(cls, amount: Decimal) -> Decimal:
        if amount <= 0:
            raise ValueError("must be greater than zero")
        return amount


class NonNegativeMoney(_BoundedMoney):
    """Money that may be zero but never less (a deductible, a credit note, a new limit of 0)."""

    amount: Annotated[
        Decimal, BeforeValidator(_unsigned_amount_input), WithJsonSchema(NON_NEGATIVE_AMOUNT_SCHEMA)
    ]

    @field_validator("amount")
    @classmethod
    def _not_negative(cls, amount: Decimal) -> Decimal:
        if amount < 0:
            raise ValueError("must not be negative")
        return amount


def money_out(money: Money | None) -> MoneyModel | None:
    return None if money is None else MoneyModel.of(money)


# ---------------------------------------------------------------- what one service reads of another
# Unknown fields are ignored, so a service may add fields to its answers without breaking the others.


class Peer(BaseModel):
    """A model of another service's answer."""

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
    # The banks assigned to the policy when it was read (they hear of its claims' events).
    assigned_bank_ids: list[str] = Field(default_factory=list)


class BuyerFacts(Peer):
    id: str
    country: str
    legal_form: str
    grade: int


class CoverageReply(Peer):
    """A coverage check's answer, as claims reads it for each invoice (underwriting's rules have
    their own `CoverageInputs`: what the check is decided from)."""

    covered: bool
    limit_in_force: MoneyModel | None
    limit_source: str | None
    reasons: list[str]
    conditions: list[dict[str, Any]]


class RecoveredInvoice(Peer):
    """What collection cases recovered on one invoice (the buyer's payments credited to it)."""

    number: str
    recovered: MoneyModel
    case_ids: list[str]


class Recoveries(Peer):
    """What a creditor's mandates (collection cases opened before any claim) recovered from a
    buyer, per invoice: `GET /v1/recoveries` of collections, which claims reads when it assesses
    and pays a claim (domain.md: amounts recovered before payment reduce the unpaid invoices)."""

    creditor_id: str
    buyer_id: str
    currency: CurrencyCode
    invoices: list[RecoveredInvoice]
    total: MoneyModel

    def by_number(self) -> dict[str, Decimal]:
        return {i.number: i.recovered.amount for i in self.invoices}


# ---------------------------------------------------------------- messages between services
# One model per message, used by the sender to write it and by the receiver (its request schema
# subclasses the model, keeping its own name in OpenAPI) to read it.

# What underwriting hears of a buyer (claims sends `overdue_notified`, `arrears_cleared`,
# `insolvency_filing` and `payment_delay`, collections `payment_delay` when a mandate opens).
# The kinds an underwriter may send (api.md's seven).
UnderwriterSignalKind = Literal[
    "insolvency_filing",
    "court_judgment",
    "payment_delay",
    "management_change",
    "registry_change",
    "overdue_notified",
    "arrears_cleared",
]
# The closed loop (domain.md, Collections: a buyer's payment behaviour in collections and claims
# feeds its grade): claims sends the first two when it pays a claim, collections the last two when
# a case goes to law or is paid in full. The services' own account of what they saw, which a
# service token alone sends.
LoopSignalKind = Literal["claim_paid", "protracted_default", "collection_legal", "collection_paid"]
SignalKind = Literal[UnderwriterSignalKind, LoopSignalKind]
UNDERWRITER_SIGNAL_KINDS: tuple[str, ...] = get_args(UnderwriterSignalKind)
# The escalation ladders a collection case climbs (collections holds their rungs).
LadderName = Literal["reminder_15_30_45", "legal_30_60_90"]
DEFAULT_LADDER: LadderName = "reminder_15_30_45"
# The same, as fields published once each as a named enum.
SignalKindField = Annotated[SignalKind, named_enum("SignalKind", SignalKind)]
LadderField = Annotated[LadderName, named_enum("LadderName", LadderName)]


class BuyerSignal(Schema):
    """A signal about a buyer: `POST /v1/buyers/{buyer_id}/signals` to underwriting."""

    kind: SignalKindField
    observed_on: Date
    details: LongText = ""
    policy_id: Ident | None = None
    # Who reports a delay, so that the grade counts one delay once while it lasts (a policy's
    # until its arrears are cleared; a creditor's until its collection cases are paid).
    creditor_id: Ident | None = Field(
        default=None,
        description="from collections: the creditor whose debt the case collects (its delay on "
        "the buyer counts once until its cases on the buyer are paid in full)",
    )
    case_id: Ident | None = Field(
        default=None, description="from collections: the collection case the signal is about"
    )


class CoverageCheck(Schema):
    """One invoice to check for cover: `POST /v1/coverage-checks` (or an item of the batch) to
    underwriting."""

    policy_id: Ident
    buyer_id: Ident
    invoice_amount: PositiveMoney
    shipment_date: Date
    due_date: Date
    # Folded as an `InvoiceNumber` is (empty: no invoice of the exposure is left out).
    invoice_number: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=INVOICE_NUMBER_LENGTH),
            AfterValidator(fold_invoice_number),
        ]
        | None
    ) = None


class CaseInvoice(Schema):
    number: InvoiceNumber
    amount: PositiveMoney
    due_date: Date
    # A mandate the claim takes over shares what it recovered on the invoice beyond this
    # (domain.md: recoveries after a paid claim are shared).
    recovered_in_collections: NonNegativeMoney | None = Field(
        default=None,
        description="from a paid claim: what its indemnity deducted as recovered on the invoice "
        "by the creditor's own collection cases",
    )


class SettledInvoice(Schema):
    """An invoice of a paid claim that its credit notes, set-offs and recoveries left nothing
    unpaid on, or that a dispute settled for the buyer found it does not owe: a mandate the
    claim takes over owes nothing on it any more."""

    number: InvoiceNumber
    recovered_in_collections: NonNegativeMoney | None = Field(
        default=None,
        description="what the claim's indemnity deducted as recovered on the invoice by the "
        "creditor's own collection cases",
    )


class CaseOpening(Schema):
    """A debt-collection case to open: `POST /v1/cases` to collections (claims opens a
    subrogation case for each claim it pays, naming the claim and the indemnity paid)."""

    creditor_id: Ident
    buyer_id: Ident
    debtor_country: CountryCode
    invoices: Annotated[list[CaseInvoice], Field(min_length=1, max_length=1000)]
    ladder: LadderField = DEFAULT_LADDER
    claim_id: Ident | None = None
    # The insurer's share of recoveries: `indemnity_paid` / the invoices' total, exactly; or a
    # percentage with any number of decimals.
    indemnity_paid: PositiveMoney | None = None
    insurer_share_pct: ExactPercent | None = None
    # The banks assigned to the claim's policy (its loss payees): they hear of the subrogation
    # case's events, as of the claim's (api.md: a bank receives those of its policies).
    loss_payee_ids: Annotated[list[Ident], Field(max_length=50)] = Field(default_factory=list)
    settled_invoices: Annotated[list[SettledInvoice], Field(max_length=1000)] = Field(
        default_factory=list,
        description="from a paid claim: its invoices it left nothing unpaid on, or that a "
        "dispute settled for the buyer (not among `invoices`); a mandate the claim takes over "
        "owes nothing on them",
    )
    currency: CurrencyCode | None = None  # the invoices' currency (another is 422)

    @model_validator(mode="after")
    def _checks(self) -> CaseOpening:
        numbers = [*(i.number for i in self.invoices), *(i.number for i in self.settled_invoices)]
        if len(set(numbers)) != len(numbers):
            raise ValueError("invoice numbers must be unique within a case")
        bounded_total((i.amount.amount for i in self.invoices), "the invoices")
        if self.indemnity_paid is not None and self.insurer_share_pct is not None:
            raise ValueError("give indemnity_paid or insurer_share_pct, not both")
        if (self.insurer_share_pct is not None or self.indemnity_paid is not None) and (
            self.claim_id is None
        ):
            raise ValueError(
                "indemnity_paid and insurer_share_pct are only for a case opened by a paid claim"
            )
        if self.loss_payee_ids and self.claim_id is None:
            raise ValueError("loss_payee_ids are only for a case opened by a paid claim")
        from_claim = (self.settled_invoices or any(i.recovered_in_collections is not None
                                                   for i in self.invoices))  # fmt: skip
        if from_claim and self.claim_id is None:
            raise ValueError("settled_invoices and recovered_in_collections are only for a case "
                             "opened by a paid claim")  # fmt: skip
        return self
