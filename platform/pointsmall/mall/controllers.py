from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Operation, RequestBody, Schema
from litestar.params import FromPath, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.deps import Session
from pointsmall.errors import PROBLEM_BASE, FieldError, InvalidInput, problem_responses
from pointsmall.idempotency.middleware import NATIVE, REPLAYED_HEADER, Idempotency
from pointsmall.ledger.schemas import MAX_POINTS
from pointsmall.mall import orders, schemas, services
from pointsmall.mall.money import utc
from pointsmall.mall.schemas import exact
from pointsmall.pagination import Limit, StartingAfter
from pointsmall.schemas import Page

AuthRequest = Request[Principal, str, Any]


def _id_param(prefix: str, description: str) -> Any:
    """A query parameter holding an id of one kind: the document's pattern ends in `$`, the
    server's in `\\Z` (see `exact`)."""
    pattern = rf"^{prefix}_[0-9a-z]{{1,36}}$"
    return QueryParameter(
        max_length=40,
        pattern=exact(pattern),
        schema_extra={"pattern": pattern},
        description=description,
    )


def _points_bound(description: str) -> Any:
    # `minimum` by hand as well: the OpenAPI generator drops a bound of 0.
    return QueryParameter(ge=0, le=MAX_POINTS, schema_extra={"minimum": 0}, description=description)


def _problems(*statuses: int, **codes: str) -> dict[int, ResponseSpec]:
    """`problem_responses`, with the problem codes this route answers with named per status
    (`s409="out_of_stock insufficient_points"`)."""
    specs = problem_responses(*statuses)
    for key, names in codes.items():
        status, listed = int(key.removeprefix("s")), names.split()
        spec = specs[status]
        example = dict((spec.examples or [Example()])[0].value or {})
        example |= {"type": PROBLEM_BASE + listed[0], "code": listed[0]}
        specs[status] = replace(
            spec,
            description=f"{spec.description}: " + ", ".join(f"`{n}`" for n in listed),
            examples=[Example(value=example)],
        )
    return specs


@dataclass
class _ProductCreateOperation(Operation):
    """POST /v1/products: the body's schema also carries the rules between its fields
    (`schemas.PRODUCT_CREATE_RULES`), which the server enforces with 422."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            for media in self.request_body.content.values():
                if media.schema is not None:
                    rules = cast(list[Schema], schemas.PRODUCT_CREATE_RULES)
                    media.schema = Schema(all_of=[media.schema, *rules])


_PRODUCT_404 = "unknown_category unknown_tier"
_PRODUCT_409 = "currency_mismatch amount_precision"


class ProductController(Controller):
    path = "/products"
    tags = ["Mall"]

    @get("/", guards=[requires("catalog:read")], responses=_problems(401, 403, 422))
    async def list_products(
        self,
        session: Session,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        category: Annotated[
            str | None,
            _id_param("cat", "Only products of this category (`cat_…`; not its subcategories)."),
        ] = None,
        kind: Annotated[
            schemas.ProductKind | None, QueryParameter(description="Only products of this kind.")
        ] = None,
        min_points: Annotated[
            int | None, _points_bound("Only products priced at least this many points.")
        ] = None,
        max_points: Annotated[
            int | None, _points_bound("Only products priced at most this many points.")
        ] = None,
        available: Annotated[
            bool,
            QueryParameter(
                description="Only what can be ordered now: active, in stock, inside its window."
            ),
        ] = False,
    ) -> Page[schemas.Product]:
        """Products, newest first; filter by category, kind, points range, and (`available`)
        what can be redeemed now."""
        return await services.list_products(
            session,
            limit=limit,
            starting_after=starting_after,
            category=category,
            kind=kind,
            min_points=min_points,
            max_points=max_points,
            available_only=available,
        )

    @post(
        "/",
        guards=[requires("catalog:write")],
        operation_class=_ProductCreateOperation,
        responses=_problems(
            401, 403, 404, 409, 422, s404=_PRODUCT_404, s409="idempotency_conflict " + _PRODUCT_409
        ),
    )
    async def create_product(
        self, session: Session, data: JSONBody[schemas.ProductCreate]
    ) -> schemas.Product:
        """Add a product to the catalog. A `category` or `tiers` that do not exist: 404.
        Money is written with its currency's minor-unit digits; more digits than the
        currency has is 409 `amount_precision`."""
        return await services.create_product(session, data)

    @get(
        "/{product_id:str}",
        guards=[requires("catalog:read")],
        responses=_problems(401, 403, 404),
    )
    async def get_product(self, session: Session, product_id: FromPath[str]) -> schemas.Product:
        return await services.get_product(session, product_id)

    @patch(
        "/{product_id:str}",
        guards=[requires("catalog:write")],
        responses=_problems(
            401,
            403,
            404,
            409,
            422,
            s404="not_found " + _PRODUCT_404,
            s409=_PRODUCT_409 + " kind_mismatch period_limit_incomplete",
        ),
    )
    async def update_product(
        self, session: Session, product_id: FromPath[str], data: JSONBody[schemas.ProductUpdate]
    ) -> schemas.Product:
        """Change any field but `kind` (an unknown field, `kind` included, is 422). The
        product as it will be is checked as on create: an unknown `category` or `tiers` is
        404; what conflicts with its kind or the tenant's data is 409."""
        return await services.update_product(session, product_id, data)

    @post(
        "/{product_id:str}/codes",
        guards=[requires("catalog:write")],
        responses=_problems(401, 403, 404, 409, 422, s409="idempotency_conflict not_virtual"),
    )
    async def add_codes(
        self, session: Session, product_id: FromPath[str], data: JSONBody[schemas.CodesIn]
    ) -> schemas.CodesAdded:
        """Upload a virtual product's codes (each one is delivered once); its stock grows
        by the codes that were new. Another kind of product: 409 `not_virtual`."""
        return await services.add_codes(session, product_id, data)


class CategoryController(Controller):
    path = "/categories"
    tags = ["Mall"]

    @get("/", guards=[requires("catalog:read")], responses=_problems(401, 403, 422))
    async def list_categories(
        self, session: Session, limit: Limit = 20, starting_after: StartingAfter = None
    ) -> Page[schemas.Category]:
        """Categories, newest first."""
        return await services.list_categories(session, limit=limit, starting_after=starting_after)

    @post(
        "/",
        guards=[requires("catalog:write")],
        responses=_problems(
            401, 403, 404, 409, 422, s404="unknown_category", s409="idempotency_conflict"
        ),
    )
    async def create_category(
        self, session: Session, data: JSONBody[schemas.CategoryCreate]
    ) -> schemas.Category:
        """A category; an unknown `parent_id` is 404 `unknown_category`."""
        return await services.create_category(session, data)

    @get(
        "/{category_id:str}",
        guards=[requires("catalog:read")],
        responses=_problems(401, 403, 404),
    )
    async def get_category(self, session: Session, category_id: FromPath[str]) -> schemas.Category:
        return await services.get_category(session, category_id)

    @patch(
        "/{category_id:str}",
        guards=[requires("catalog:write")],
        responses=_problems(
            401, 403, 404, 409, 422, s404="not_found unknown_category", s409="category_cycle"
        ),
    )
    async def update_category(
        self, session: Session, category_id: FromPath[str], data: JSONBody[schemas.CategoryUpdate]
    ) -> schemas.Category:
        """Rename, move or reorder; a parent that does not exist is 404 `unknown_category`,
        one that would put the category under itself 409 `category_cycle`."""
        return await services.update_category(session, category_id, data)


_CREATED = "Only orders placed at or after this time (RFC 3339 with an offset)."
_BEFORE = "Only orders placed before this time (RFC 3339 with an offset)."
_SPLIT_409 = (
    "cash_mismatch points_share_exceeded inexact_split invalid_split unknown_payment_provider"
)
_ORDER_409 = (
    "idempotency_conflict out_of_stock insufficient_points limit_exceeded period_limit_exceeded"
    " tier_restricted not_available product_unavailable " + _SPLIT_409
)


def _time_param(name: str, description: str) -> Any:
    # Taken as text and parsed strictly (`_time`): the lax query conversion would read
    # `0.5` as a Unix time.
    return QueryParameter(
        name=name, max_length=64, schema_extra={"format": "date-time"}, description=description
    )


def _time(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 time with its offset, in UTC (422 otherwise)."""
    if value is None:
        return None
    try:
        return utc(msgspec.convert(value, schemas.AwareTime))
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            "The request is invalid.",
            errors=[FieldError(field=field, message=f"an RFC 3339 time with its offset: {exc}")],
        ) from None


class OrderController(Controller):
    path = "/orders"
    tags = ["Mall"]

    @get("/", guards=[requires("points:read")], responses=_problems(401, 403, 422))
    async def list_orders(
        self,
        request: AuthRequest,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        member_id: Annotated[
            str | None, _id_param("mem", "Only this member's orders (`mem_…`).")
        ] = None,
        status: Annotated[
            schemas.OrderStatus | None, QueryParameter(description="Only orders in this state.")
        ] = None,
        created_gte: Annotated[str | None, _time_param("created[gte]", _CREATED)] = None,
        created_lt: Annotated[str | None, _time_param("created[lt]", _BEFORE)] = None,
    ) -> Page[schemas.Order]:
        """Orders, newest first; filter by member, status and when they were placed."""
        return await orders.list_orders(
            request.app.state.hot_pool,
            request.user.schema,
            limit=limit,
            starting_after=starting_after,
            member_id=member_id,
            status=status,
            created_gte=_time(created_gte, "created[gte]"),
            created_lt=_time(created_lt, "created[lt]"),
        )

    @post(
        "/",
        guards=[requires("orders:write")],
        opt=NATIVE,
        responses=_problems(401, 403, 404, 409, 422, 502, s404="not_found", s409=_ORDER_409),
    )
    async def place(
        self, request: AuthRequest, data: JSONBody[schemas.OrderCreate]
    ) -> Response[schemas.Order]:
        """Redeem points (and cash): stock is reserved and points debited in one transaction,
        or nothing happens (409 `out_of_stock`, `insufficient_points`, `limit_exceeded`, …;
        404 for an unknown member or product). With a cash part the order waits in
        `pending_payment` until the payment is confirmed."""
        idem: Idempotency = request.state.get("idempotency") or Idempotency()
        order, replayed = await orders.place_order(
            request.app.state.hot_pool,
            request.user.schema,
            request.user.tenant_id,
            data,
            granted_by=request.user.credential_id,
            idem=idem,
            payment_timeout=timedelta(seconds=request.app.state.settings.payment_timeout_seconds),
        )
        return Response(
            order, status_code=201, headers={REPLAYED_HEADER: "true"} if replayed else {}
        )

    @get(
        "/{order_id:str}",
        guards=[requires("points:read")],
        responses=_problems(401, 403, 404),
    )
    async def get_order(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        return await orders.get_order(request.app.state.hot_pool, request.user.schema, order_id)

    @post(
        "/{order_id:str}/cancel",
        status_code=200,
        guards=[requires("orders:write")],
        responses=_problems(
            401,
            403,
            404,
            409,
            502,
            s409="idempotency_conflict invalid_order_state payment_expired coupon_redeemed",
        ),
    )
    async def cancel(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        """Cancel before fulfilment: points, stock and any paid cash come back (after
        fulfilment: 409 `invalid_order_state`; refund instead)."""
        return await self._change(request, order_id, "cancel")

    @post(
        "/{order_id:str}/fulfill",
        status_code=200,
        guards=[requires("orders:write")],
        responses=_problems(
            401, 403, 404, 409, s409="idempotency_conflict invalid_order_state payment_expired"
        ),
    )
    async def fulfill(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        """A confirmed order was delivered: `confirmed → fulfilled`."""
        return await self._change(request, order_id, "fulfill")

    @post(
        "/{order_id:str}/refund",
        status_code=200,
        guards=[requires("orders:write")],
        responses=_problems(
            401,
            403,
            404,
            409,
            422,
            502,
            s409="idempotency_conflict invalid_order_state payment_expired coupon_redeemed",
        ),
    )
    async def refund(
        self,
        request: AuthRequest,
        order_id: FromPath[str],
        data: JSONBody[schemas.RefundIn | None] = None,
    ) -> schemas.Order:
        """Refund a confirmed or fulfilled order: points and paid cash come back; stock only
        with `restock: true`. 409 `coupon_redeemed` when one of its coupons was used."""
        return await self._change(
            request, order_id, "refund", restock=(data or schemas.RefundIn()).restock
        )

    @post(
        "/{order_id:str}/confirm-payment",
        status_code=200,
        guards=[requires("orders:write")],
        responses=_problems(
            401,
            403,
            404,
            409,
            422,
            s409="idempotency_conflict payment_mismatch payment_incomplete payment_expired"
            " invalid_order_state",
        ),
    )
    async def confirm_payment(
        self, request: AuthRequest, order_id: FromPath[str], data: JSONBody[schemas.ConfirmPayment]
    ) -> schemas.Order:
        """The cash part was paid: `pending_payment → confirmed`. After the payment window:
        409 `payment_expired` (the order is cancelled, its points and stock given back)."""
        return await orders.confirm_payment(
            request.app.state.hot_pool,
            request.user.schema,
            request.user.tenant_id,
            order_id,
            data.payment_id,
            granted_by=request.user.credential_id,
        )

    @staticmethod
    async def _change(
        request: AuthRequest, order_id: str, action: str, *, restock: bool = True
    ) -> schemas.Order:
        return await orders.change(
            request.app.state.hot_pool,
            request.user.schema,
            request.user.tenant_id,
            order_id,
            action,
            granted_by=request.user.credential_id,
            restock=restock,
        )


class CouponController(Controller):
    path = "/coupons/{code:str}"
    tags = ["Mall"]

    @get("/", guards=[requires("orders:write")], responses=_problems(401, 403, 404))
    async def validate(self, request: AuthRequest, code: FromPath[str]) -> schemas.CouponOut:
        """Check a code at checkout: valid, redeemed, expired or void."""
        return await services.get_coupon(request.app.state.hot_pool, request.user.schema, code)

    @post(
        "/redeem",
        status_code=200,
        guards=[requires("orders:write")],
        responses=_problems(
            401,
            403,
            404,
            409,
            422,
            s409="idempotency_conflict coupon_redeemed coupon_expired coupon_void",
        ),
    )
    async def redeem(
        self,
        request: AuthRequest,
        code: FromPath[str],
        data: JSONBody[schemas.CouponRedeem | None] = None,
    ) -> schemas.CouponOut:
        """Use a code once; 409 `coupon_redeemed`, `coupon_expired` or `coupon_void`
        otherwise."""
        return await services.redeem_coupon(
            request.app.state.hot_pool, request.user.schema, code, data or schemas.CouponRedeem()
        )
