"""Money and the points/cash split. The rule: points turn into cash only in whole minor
units of the currency, so no split is ever rounded. A split that would need rounding is
refused (422 `inexact_split`) with the nearest exact points figures, and the largest
points share is a ceiling the member may not pass (the share is never rounded up)."""

from decimal import Decimal
from fractions import Fraction

# ISO 4217 minor units where they are not 2 (the list payment providers use).
_MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def minor_unit(currency: str) -> Fraction:
    return Fraction(1, 10 ** _MINOR_UNITS.get(currency, 2))


def money(value: Fraction, currency: str) -> str:
    """An exact amount as the decimal string the API shows (`12.30`, `500`)."""
    digits = _MINOR_UNITS.get(currency, 2)
    minor = value / minor_unit(currency)
    assert minor.denominator == 1, "only whole minor units are shown"
    return f"{Decimal(minor.numerator).scaleb(-digits):.{digits}f}"


def points_step(point_value: Decimal, currency: str) -> int:
    """The fewest points that make a whole number of minor units (1 when a point is worth
    a whole number of them: 100 points = 1 CNY gives 1)."""
    return (Fraction(point_value) / minor_unit(currency)).denominator


class Split:
    """An order's price (`points_total` points and `cash_total` cash) and what may pay it:
    `points` between 0 and `max_points` that convert exactly; the rest is cash."""

    def __init__(
        self,
        points_total: int,
        cash_total: Fraction,
        currency: str,
        point_value: Decimal,
        max_share: Decimal,
    ) -> None:
        self.points_total = points_total
        self.cash_total = cash_total
        self.value = Fraction(point_value)
        self.step = points_step(point_value, currency)
        worth = points_total * self.value + cash_total  # the price in cash terms
        ceiling = min(points_total, int(Fraction(max_share) * worth / self.value))
        # The largest exact figure at or below the ceiling (negative: none is exact).
        self.max_points = ceiling - (ceiling - points_total) % self.step

    def exact(self, points: int) -> bool:
        return (self.points_total - points) % self.step == 0

    def nearest(self, points: int) -> tuple[int, int]:
        """The exact figures just below and above `points`."""
        below = points - (points - self.points_total) % self.step
        return below, below + self.step

    def cash_for(self, points: int) -> Fraction:
        return self.cash_total + (self.points_total - points) * self.value
