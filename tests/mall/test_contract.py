"""Issue 12, the mall's part of the contract, through the API: `GET /v1/orders`, one money
format per currency exponent, UTC everywhere, `PATCH /v1/products` for every field,
`shipping_address` on orders and their events, and a document that says all of it."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.mall import money
from tests.conftest import TenantClient
from tests.mall.helpers import member, product

Tenants = tuple[TenantClient, TenantClient]
ADDRESS = {"name": "Ann Lee", "line1": "1 Harbour Rd", "city": "Hong Kong", "floor": 12}


async def _order(t: TenantClient, member_id: str, product_id: str, **extra: Any) -> Any:
    body = {"member_id": member_id, "lines": [{"product_id": product_id}]} | extra
    response = await t.http.post("/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _outbox(engine: AsyncEngine, t: TenantClient) -> list[tuple[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT type, payload FROM {t.schema}.outbox WHERE type LIKE 'order.%' ORDER BY id"
            )
        )
        return [(row.type, row.payload) for row in rows]


# --- GET /v1/orders ---------------------------------------------------------------------------


async def test_orders_list_envelope_filters_paging_and_tenants(tenants: Tenants) -> None:
    a, b = tenants
    ann, bob = await member(a, "ann", 5000), await member(a, "bob", 5000)
    mug = await product(a, points_price=100)
    cash = await product(a, points_price=100, cash_price="5.00")
    first = await _order(a, ann, mug, shipping_address=ADDRESS)
    second = await _order(a, bob, mug)
    third = await _order(a, ann, cash)
    cancelled = await a.http.post(f"/v1/orders/{second['id']}/cancel")
    assert cancelled.status_code == 200
    other = await _order(b, await member(b, "cat", 500), await product(b, points_price=10))

    async def ids(t: TenantClient = a, /, **params: Any) -> list[str]:
        response = await t.http.get("/v1/orders", params=params)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["data"]]

    everything = await a.http.get("/v1/orders")
    page = everything.json()
    assert set(page) == {"data", "has_more", "next_cursor"}
    assert [o["id"] for o in page["data"]] == [third["id"], second["id"], first["id"]]
    assert (page["has_more"], page["next_cursor"]) == (False, None)
    # Each entry is the order as GET /v1/orders/{id} shows it.
    for order in page["data"]:
        assert order == (await a.http.get(f"/v1/orders/{order['id']}")).json()
    assert page["data"][2]["shipping_address"] == ADDRESS
    assert await ids(member_id=ann) == [third["id"], first["id"]]
    assert await ids(status="cancelled") == [second["id"]]
    assert await ids(status="pending_payment", member_id=ann) == [third["id"]]
    assert await ids(status="fulfilled") == []
    # The created range, with the boundary given in UTC and at another offset.
    at = datetime.fromisoformat(second["created_at"])
    eight = at.astimezone(timezone(timedelta(hours=8))).isoformat()
    assert await ids(**{"created[gte]": second["created_at"]}) == [third["id"], second["id"]]
    assert await ids(**{"created[gte]": eight}) == [third["id"], second["id"]]
    assert await ids(**{"created[lt]": eight}) == [first["id"]]
    assert await ids(**{"created[gte]": eight, "created[lt]": third["created_at"]}) == [
        second["id"]
    ]
    # Paging: limit and starting_after, next_cursor naming the last id of the page.
    one = (await a.http.get("/v1/orders", params={"limit": 2})).json()
    assert [o["id"] for o in one["data"]] == [third["id"], second["id"]]
    assert (one["has_more"], one["next_cursor"]) == (True, second["id"])
    two = (await a.http.get("/v1/orders", params={"starting_after": one["next_cursor"]})).json()
    assert ([o["id"] for o in two["data"]], two["has_more"], two["next_cursor"]) == (
        [first["id"]],
        False,
        None,
    )
    # Tenants: B sees only its own order, whatever it filters on.
    assert await ids(b) == [other["id"]]
    assert await ids(b, member_id=ann) == []
    assert other["id"] not in await ids()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created[gte]": "0.5"}, "created[gte]"),
        ({"created[lt]": "2026-01-01T00:00:00"}, "created[lt]"),  # no offset
        ({"status": "lost"}, "status"),
        ({"member_id": "nobody"}, "member_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ],
)
async def test_orders_list_refuses_bad_queries(
    tenants: Tenants, params: dict[str, Any], field: str
) -> None:
    a, _ = tenants
    response = await a.http.get("/v1/orders", params=params)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}, response.text


async def test_orders_list_needs_a_read_scope(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/orders")).status_code == 401


# --- one money format -------------------------------------------------------------------------

MONEY = [
    # currency, cash price given, shown, two of them, coupon value given, shown, refused
    ("USD", "99", "99.00", "198.00", "10", "10.00", "0.001"),
    ("JPY", "100.0000", "100", "200", "500", "500", "100.5"),
    ("KWD", "1.5", "1.500", "3.000", "2.25", "2.250", "1.0005"),
]


@pytest.mark.parametrize(
    ("currency", "given", "shown", "twice", "value", "value_shown", "bad"), MONEY
)
async def test_money_has_the_currency_minor_digits(
    tenants: Tenants,
    engine: AsyncEngine,
    currency: str,
    given: str,
    shown: str,
    twice: str,
    value: str,
    value_shown: str,
    bad: str,
) -> None:
    a, _ = tenants
    settings = await a.http.patch("/v1/settings", json={"currency": currency})
    assert settings.status_code == 200, settings.text
    buyer = await member(a, "payer", 10_000)
    created = await a.http.post(
        "/v1/products",
        json={"name": "Lamp", "kind": "physical", "points_price": 100, "cash_price": given},
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert (item["cash_price"], item["currency"]) == (shown, currency)
    assert (await a.http.get(f"/v1/products/{item['id']}")).json()["cash_price"] == shown
    listed = (await a.http.get("/v1/products")).json()["data"]
    assert [p["cash_price"] for p in listed] == [shown]
    # Orders: the cash part and each line's, written by the database's renderer.
    response = await a.http.post(
        "/v1/orders",
        json={"member_id": buyer, "lines": [{"product_id": item["id"], "quantity": 2}]},
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["cash"], order["lines"][0]["cash"], order["currency"]) == (twice, twice, currency)
    paid = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment",
        json={"payment_id": order["payment"]["payment_id"]},
    )
    refunded = await a.http.post(f"/v1/orders/{order['id']}/refund")
    assert paid.json()["cash"] == refunded.json()["cash"] == twice
    listed_orders = (await a.http.get("/v1/orders")).json()["data"]
    assert listed_orders[0]["cash"] == twice
    assert {p["cash"] for _, p in await _outbox(engine, a)} == {twice}
    # Coupons: the product's value and each issued code's.
    coupon = await product(
        a, name="Voucher", kind="coupon", points_price=10, coupon_value=value, coupon_valid_days=9
    )
    shown_coupon = (await a.http.get(f"/v1/products/{coupon}")).json()
    assert (shown_coupon["coupon_value"], shown_coupon["coupon_valid_days"]) == (value_shown, 9)
    code = (await _order(a, buyer, coupon))["coupons"][0]
    issued = (await a.http.get(f"/v1/coupons/{code}")).json()
    assert (issued["value"], issued["currency"]) == (value_shown, currency)
    redeemed = (await a.http.post(f"/v1/coupons/{code}/redeem")).json()
    assert redeemed["value"] == value_shown
    # Digits the currency does not have are refused, not rounded.
    for body, field in (
        ({"name": "x", "kind": "physical", "points_price": 1, "cash_price": bad}, "cash_price"),
        (
            {"name": "x", "kind": "coupon", "points_price": 1, "coupon_value": bad}
            | {"coupon_valid_days": 1},
            "coupon_value",
        ),
    ):
        refused = await a.http.post("/v1/products", json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "amount_precision"
        assert refused.json()["errors"][0]["field"] == field
    patched = await a.http.patch(f"/v1/products/{item['id']}", json={"cash_price": bad})
    assert patched.status_code == 409 and patched.json()["code"] == "amount_precision"


async def test_a_coupon_in_its_own_currency_has_that_currency_digits(tenants: Tenants) -> None:
    a, _ = tenants
    coupon = await a.http.post(
        "/v1/products",
        json={
            "name": "Yen voucher",
            "kind": "coupon",
            "points_price": 10,
            "coupon_value": "1000.00",
            "currency": "JPY",
            "coupon_valid_days": 3,
        },
    )
    assert coupon.status_code == 201, coupon.text
    assert (coupon.json()["coupon_value"], coupon.json()["currency"]) == ("1000", "JPY")
    fraction = await a.http.patch(
        f"/v1/products/{coupon.json()['id']}", json={"coupon_value": "999.5"}
    )
    assert fraction.status_code == 409 and fraction.json()["code"] == "amount_precision"
    unknown = await a.http.post(
        "/v1/products",
        json={
            "name": "x",
            "kind": "coupon",
            "points_price": 1,
            "coupon_valid_days": 1,
            "currency": "XYZ",
        },
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "currency"


async def test_both_renderers_agree_for_every_currency(
    tenants: Tenants, hot_pool: asyncpg.Pool
) -> None:
    a, _ = tenants
    codes = [*sorted(money.CURRENCIES), "XYZ"]  # an unknown code: 2 digits on both sides
    amounts = [Decimal("0"), Decimal("0.0050"), Decimal("2.5"), Decimal("1234.5678")]
    async with hot_pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path = {a.schema}")
        rows = await conn.fetch(
            "SELECT c, a, mall_minor_digits(c) AS digits, mall_money(a, c) AS shown"
            " FROM unnest($1::text[]) c CROSS JOIN unnest($2::numeric[]) a",
            codes,
            amounts,
        )
    assert len(rows) == len(codes) * len(amounts)
    for row in rows:
        assert row["digits"] == money.minor_digits(row["c"]), row["c"]
        assert row["shown"] == money.render(row["a"], row["c"]), (row["c"], row["a"])
    assert money.render(Decimal("99.0000"), "USD") == "99.00"
    assert money.render(Decimal("100.0000"), "JPY") == "100"
    assert money.render(Decimal("1.5"), "KWD") == "1.500"


# --- UTC --------------------------------------------------------------------------------------

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _times(value: Any, path: str = "") -> dict[str, str]:
    """Every string in a JSON value that reads as an RFC 3339 time, by where it is."""
    if isinstance(value, str) and _TIME.match(value):
        return {path: value}
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _times(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= _times(item, f"{path}[{index}]")
    return found


def _all_utc(value: Any) -> None:
    times = _times(value)
    assert times, value
    for path, moment in times.items():
        assert moment.endswith("Z"), (path, moment)


async def test_every_time_the_mall_writes_is_utc(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    await a.http.patch("/v1/settings", json={"timezone": "Asia/Shanghai"})
    buyer = await member(a, "utc", 5000)
    created = await a.http.post(
        "/v1/products",
        json={
            "name": "Kite",
            "kind": "physical",
            "points_price": 100,
            "cash_price": "2.00",
            "available_from": "2020-01-01T08:00:00+08:00",
            "available_until": "2099-01-01T05:30:00+05:30",
        },
    )
    assert created.status_code == 201, created.text
    kite = created.json()
    assert kite["available_from"] == "2020-01-01T00:00:00Z"
    assert kite["available_until"] == "2099-01-01T00:00:00Z"
    _all_utc(kite)
    patched = await a.http.patch(
        f"/v1/products/{kite['id']}", json={"available_until": "2098-12-31T20:00:00-04:00"}
    )
    assert patched.json()["available_until"] == "2099-01-01T00:00:00Z"
    _all_utc((await a.http.get("/v1/products")).json())
    coupon = await product(a, kind="coupon", points_price=10, coupon_valid_days=2)
    voucher = await _order(a, buyer, coupon)
    _all_utc(voucher)
    _all_utc((await a.http.get(f"/v1/coupons/{voucher['coupons'][0]}")).json())
    _all_utc((await a.http.post(f"/v1/coupons/{voucher['coupons'][0]}/redeem")).json())
    pending = await _order(a, buyer, kite["id"])
    assert pending["payment"]["expires_at"].endswith("Z")
    confirmed = await a.http.post(
        f"/v1/orders/{pending['id']}/confirm-payment",
        json={"payment_id": pending["payment"]["payment_id"]},
    )
    _all_utc(confirmed.json())
    _all_utc((await a.http.get("/v1/orders")).json())
    _all_utc((await a.http.post("/v1/categories", json={"name": "Toys"})).json())
    _all_utc((await a.http.get("/v1/categories")).json())
    events = await _outbox(engine, a)
    assert {kind for kind, _ in events} >= {"order.created", "order.confirmed"}
    for _, payload in events:
        _all_utc(payload)


# --- PATCH /v1/products/{id}: every field -----------------------------------------------------


async def test_patch_product_changes_every_field(tenants: Tenants) -> None:
    a, b = tenants
    tier = {"key": "gold", "name": "Gold", "threshold": 300, "window_days": 30}
    assert (await a.http.post("/v1/tiers", json=tier)).status_code == 201
    category = (await a.http.post("/v1/categories", json={"name": "Home"})).json()["id"]
    mug = await product(a, description="old")
    change = {
        "name": "Big mug",
        "points_price": 250,
        "description": "Holds a pint.",
        "category": category,
        "cash_price": "3.5",
        "currency": "USD",
        "stock": 7,
        "per_member_limit": 3,
        "per_period_limit": 2,
        "limit_period": "week",
        "tiers": ["gold"],
        "available_from": "2020-01-01T00:00:00Z",
        "available_until": "2099-01-01T00:00:00Z",
        "images": ["https://img.example/mug.png"],
        "status": "draft",
    }
    patched = await a.http.patch(f"/v1/products/{mug}", json=change)
    assert patched.status_code == 200, patched.text
    expected = change | {"cash_price": "3.50"}
    shown = (await a.http.get(f"/v1/products/{mug}")).json()
    for field, value in expected.items():
        assert patched.json()[field] == value == shown[field], field
    assert shown["kind"] == "physical"
    cleared = await a.http.patch(
        f"/v1/products/{mug}",
        json={
            field: None
            for field in (
                "description",
                "category",
                "cash_price",
                "stock",
                "per_member_limit",
                "per_period_limit",
                "limit_period",
                "tiers",
                "available_from",
                "available_until",
            )
        }
        | {"images": [], "status": "active"},
    )
    assert cleared.status_code == 200, cleared.text
    after = cleared.json()
    assert all(
        after[field] is None
        for field in ("description", "category", "cash_price", "stock", "tiers", "limit_period")
    )
    assert (after["images"], after["status"], after["name"]) == ([], "active", "Big mug")
    # kind does not change (create another product); another tenant's product is not there.
    kind = await a.http.patch(f"/v1/products/{mug}", json={"kind": "service"})
    assert kind.status_code == 422 and "`kind`" in kind.json()["errors"][0]["message"]
    assert (await b.http.patch(f"/v1/products/{mug}", json={"name": "x"})).status_code == 404


async def test_patch_coupon_fields_take_effect_on_new_coupons(tenants: Tenants) -> None:
    a, _ = tenants
    buyer = await member(a, "cp", 1000)
    coupon = await product(a, kind="coupon", points_price=10, coupon_valid_days=30)
    patched = await a.http.patch(
        f"/v1/products/{coupon}", json={"coupon_value": "7.5", "coupon_valid_days": 2}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["coupon_value"], patched.json()["coupon_valid_days"]) == ("7.50", 2)
    assert patched.json()["currency"] == "USD"
    code = (await _order(a, buyer, coupon))["coupons"][0]
    issued = (await a.http.get(f"/v1/coupons/{code}")).json()
    assert issued["value"] == "7.50"
    days = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=1) < days <= timedelta(days=2)
    required = await a.http.patch(f"/v1/products/{coupon}", json={"coupon_valid_days": None})
    assert required.status_code == 422 and required.json()["errors"][0]["field"] == (
        "coupon_valid_days"
    )


@pytest.mark.parametrize(
    ("kind", "change", "code", "field"),
    [
        ("virtual", {"stock": 5}, "kind_mismatch", "stock"),
        ("physical", {"coupon_value": "5"}, "kind_mismatch", "coupon_value"),
        ("service", {"coupon_valid_days": 5}, "kind_mismatch", "coupon_valid_days"),
        ("physical", {"per_period_limit": 2}, "period_limit_incomplete", "limit_period"),
        ("physical", {"limit_period": "day"}, "period_limit_incomplete", "per_period_limit"),
        ("physical", {"cash_price": "1", "currency": "EUR"}, "currency_mismatch", "currency"),
        ("physical", {"cash_price": "1.999"}, "amount_precision", "cash_price"),
    ],
)
async def test_patch_product_conflicts_are_409_and_change_nothing(
    tenants: Tenants, kind: str, change: dict[str, Any], code: str, field: str
) -> None:
    await _refused_patch(tenants[0], kind, change, 409, code, field)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"category": "cat_01jz0000000000000000000000"}, "unknown_category", "category"),
        ({"tiers": ["nosuchtier"]}, "unknown_tier", "tiers"),
    ],
)
async def test_patch_naming_what_does_not_exist_is_404_and_changes_nothing(
    tenants: Tenants, change: dict[str, Any], code: str, field: str
) -> None:
    await _refused_patch(tenants[0], "physical", change, 404, code, field)


async def _refused_patch(
    a: TenantClient, kind: str, change: dict[str, Any], status: int, code: str, field: str
) -> None:
    item = await product(a, kind=kind)
    before = (await a.http.get(f"/v1/products/{item}")).json()
    refused = await a.http.patch(f"/v1/products/{item}", json=change)
    assert refused.status_code == status, refused.text
    assert refused.json()["code"] == code and refused.json()["errors"][0]["field"] == field
    assert (await a.http.get(f"/v1/products/{item}")).json() == before


# --- shipping_address -------------------------------------------------------------------------


async def test_shipping_address_on_orders_and_their_events(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    buyer = await member(a, "ship", 5000)
    points_only = await _order(a, buyer, await product(a), shipping_address=ADDRESS)
    assert points_only["shipping_address"] == ADDRESS
    cash = await _order(
        a, buyer, await product(a, cash_price="1.00"), shipping_address={"line1": "2 Pier St"}
    )
    assert cash["shipping_address"] == {"line1": "2 Pier St"}
    await a.http.post(
        f"/v1/orders/{cash['id']}/confirm-payment",
        json={"payment_id": cash["payment"]["payment_id"]},
    )
    fulfilled = await a.http.post(f"/v1/orders/{points_only['id']}/fulfill")
    assert fulfilled.json()["shipping_address"] == ADDRESS
    bare = await _order(a, buyer, await product(a))
    assert bare["shipping_address"] is None
    assert (await a.http.get(f"/v1/orders/{points_only['id']}")).json()["shipping_address"] == (
        ADDRESS
    )
    events = [(kind, p["id"], p["shipping_address"]) for kind, p in await _outbox(engine, a)]
    assert events == [
        ("order.created", points_only["id"], ADDRESS),
        ("order.created", cash["id"], {"line1": "2 Pier St"}),
        ("order.confirmed", cash["id"], {"line1": "2 Pier St"}),
        ("order.fulfilled", points_only["id"], ADDRESS),
        ("order.created", bare["id"], None),
    ]
    # Flat, like attributes: at most 50 keys, no nesting.
    for address in ({f"k{i}": i for i in range(51)}, {"line1": {"street": "x"}}, {"a b": "c"}):
        refused = await a.http.post(
            "/v1/orders",
            json={
                "member_id": buyer,
                "lines": [{"product_id": bare["lines"][0]["product_id"]}],
                "shipping_address": address,
            },
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert "shipping_address" in error["field"] + error["message"], error


# --- the document says what the server does ---------------------------------------------------


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


RULE_CASES: list[dict[str, Any]] = [
    {"kind": "virtual"},
    {"kind": "virtual", "stock": 3},
    {"kind": "virtual", "stock": None},
    {"kind": "coupon", "coupon_valid_days": 3, "coupon_value": "1"},
    {"kind": "coupon"},
    {"kind": "coupon", "coupon_valid_days": None},
    {"kind": "physical", "coupon_value": "1"},
    {"kind": "service", "coupon_valid_days": 1},
    {"kind": "physical", "coupon_value": None, "coupon_valid_days": None},
    {"kind": "physical", "per_period_limit": 2, "limit_period": "day"},
    {"kind": "physical", "per_period_limit": 2},
    {"kind": "physical", "limit_period": "month"},
    {"kind": "physical", "per_period_limit": None, "limit_period": None},
    {"kind": "physical", "per_period_limit": 2, "limit_period": None},
]


async def test_product_body_rules_in_the_document_are_the_servers(
    tenants: Tenants, document: dict[str, Any]
) -> None:
    a, _ = tenants
    body_schema = document["paths"]["/v1/products"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    validator = jsonschema_rs.Draft202012Validator(
        body_schema | {"components": document["components"]}
    )
    verdicts = set()
    for case in RULE_CASES:
        body = {"name": "x", "points_price": 1} | case
        valid = validator.is_valid(body)
        response = await a.http.post("/v1/products", json=body)
        assert response.status_code == (201 if valid else 422), (case, response.text)
        verdicts.add(valid)
    assert verdicts == {True, False}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cash_price", "1.5\n"),
        ("images", ["https://img.example/a.png\n"]),
        ("category", "cat_01jz0000000000000000000000\n"),
    ],
)
async def test_a_trailing_newline_does_not_pass_a_pattern(
    tenants: Tenants, field: str, value: Any
) -> None:
    # The document's patterns are ECMA-262's, whose `$` is the end of the text; Python's
    # also matches before a final newline, so the decoder's patterns end with `\Z`.
    a, _ = tenants
    body = {"name": "x", "kind": "physical", "points_price": 1, field: value}
    refused = await a.http.post("/v1/products", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"].startswith(field), refused.text


MALL_OPERATIONS = {
    ("get", "/v1/products"): {"401", "403", "422"},
    ("post", "/v1/products"): {"401", "403", "404", "409", "422"},
    ("get", "/v1/products/{product_id}"): {"401", "403", "404"},
    ("patch", "/v1/products/{product_id}"): {"401", "403", "404", "409", "422"},
    ("post", "/v1/products/{product_id}/codes"): {"401", "403", "404", "409", "422"},
    ("get", "/v1/categories"): {"401", "403", "422"},
    ("post", "/v1/categories"): {"401", "403", "404", "409", "422"},
    ("get", "/v1/categories/{category_id}"): {"401", "403", "404"},
    ("patch", "/v1/categories/{category_id}"): {"401", "403", "404", "409", "422"},
    ("get", "/v1/orders"): {"401", "403", "422"},
    ("post", "/v1/orders"): {"401", "403", "404", "409", "422", "502"},
    ("get", "/v1/orders/{order_id}"): {"401", "403", "404"},
    ("post", "/v1/orders/{order_id}/cancel"): {"401", "403", "404", "409", "502"},
    ("post", "/v1/orders/{order_id}/fulfill"): {"401", "403", "404", "409"},
    ("post", "/v1/orders/{order_id}/refund"): {"401", "403", "404", "409", "422", "502"},
    ("post", "/v1/orders/{order_id}/confirm-payment"): {"401", "403", "404", "409", "422"},
    ("get", "/v1/coupons/{code}"): {"401", "403", "404"},
    ("post", "/v1/coupons/{code}/redeem"): {"401", "403", "404", "409", "422"},
}


async def test_mall_operations_document_their_statuses_and_fields(
    document: dict[str, Any],
) -> None:
    for (method, path), statuses in MALL_OPERATIONS.items():
        responses = document["paths"][path][method]["responses"]
        assert statuses <= set(responses), (method, path, sorted(responses))
    # The problem codes a route answers with are named in its 409.
    conflicts = document["paths"]["/v1/products/{product_id}"]["patch"]["responses"]["409"]
    for code in ("kind_mismatch", "period_limit_incomplete", "amount_precision"):
        assert f"`{code}`" in conflicts["description"]
    missing = document["paths"]["/v1/products/{product_id}"]["patch"]["responses"]["404"]
    assert "`unknown_tier`" in missing["description"]
    schemas = document["components"]["schemas"]
    names = {
        "ProductCreate",
        "ProductUpdate",
        "Product",
        "Order",
        "OrderCreate",
        "OrderLine",
        "OrderLineIn",
        "PaymentIn",
        "PaymentOut",
        "Money",
        "Category",
        "CategoryCreate",
        "CategoryUpdate",
        "CouponOut",
        "CouponRedeem",
        "CodesIn",
        "CodesAdded",
        "ConfirmPayment",
        "RefundIn",
        "VirtualCodeOut",
    }
    for name in names:
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("description"), (name, field)
    # What a response always carries is required, so a generated client need not guess.
    for name in ("Product", "Order", "OrderLine", "PaymentOut", "Category", "CouponOut"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    assert {"coupon_value", "coupon_valid_days"} <= set(schemas["Product"]["properties"])
    assert "shipping_address" in schemas["Order"]["properties"]
    assert schemas["ProductCreate"]["properties"]["stock"]["minimum"] == 0
    tier_items = schemas["ProductUpdate"]["properties"]["tiers"]["oneOf"][0]["items"]
    assert tier_items["pattern"] == "^[a-z][a-z0-9_]{0,39}$"
    assert "JPY" in schemas["Money"]["properties"]["currency"]["enum"]
    parameters = {
        p["name"]: p["schema"] for p in document["paths"]["/v1/orders"]["get"]["parameters"]
    }
    assert parameters["created[gte]"]["format"] == "date-time"
    assert "cancelled" in parameters["status"]["enum"]
    products = {p["name"]: p for p in document["paths"]["/v1/products"]["get"]["parameters"]}
    assert products["min_points"]["schema"]["minimum"] == 0
    assert all(products[n]["description"] for n in ("category", "kind", "min_points", "available"))
