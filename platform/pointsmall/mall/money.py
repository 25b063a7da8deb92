"""Money in the mall: ISO 4217 currencies, their minor units, and the one way an amount is
written in the API's output (`render`); and `utc`, the one way a time enters it. The database side is `mall_money` /
`mall_minor_digits` (tenant migrations); the two tables agree (a test compares them).

An amount is a decimal string with exactly the currency's minor-unit digits: `"99.00"` USD,
`"100"` JPY, `"1.500"` KWD. Input may have fewer digits (`"9.9"`) or trailing zeros
(`"9.9000"`); digits the currency does not have (`"9.999"` USD) are refused, never rounded.
"""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

# ISO 4217 list one, active codes (precious metals, testing and bond units, which have no
# minor unit, are left out: nothing in the mall is priced in them).
Currency = Literal[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
]  # fmt: skip
CURRENCIES: frozenset[str] = frozenset(get_args(Currency))

# Minor units where they are not 2 (ISO 4217).
_MINOR_DIGITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"),
        0,
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def minor_digits(currency: str) -> int:
    """The currency's minor-unit digits (2 for a code the table does not know)."""
    return _MINOR_DIGITS.get(currency, 2)


def render(amount: Decimal, currency: str) -> str:
    """The amount as the API writes it: exactly the currency's minor-unit digits."""
    digits = minor_digits(currency)
    return format(amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP), "f")


def render_or_none(amount: Decimal | None, currency: str | None) -> str | None:
    if amount is None:
        return None
    return render(amount, currency or "")


def fits(amount: Decimal, currency: str) -> bool:
    """Whether the amount needs no digit the currency does not have (`9.90` fits USD,
    `9.999` does not; `100.0` fits JPY)."""
    return amount == amount.quantize(Decimal(1).scaleb(-minor_digits(currency)))


def utc(moment: datetime) -> datetime:
    """The instant in UTC. One beyond what Python's datetime holds in UTC (year 9999 with a
    negative offset, year 1 with a positive one) becomes the last or first instant it holds:
    as a bound or a window edge it means the same."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.max if moment.year > 1 else datetime.min).replace(tzinfo=UTC)
