from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.idempotency.middleware import NATIVE, REPLAYED_HEADER, Idempotency
from pointsmall.mall import orders, schemas, services
from pointsmall.pagination import Limit, StartingAfter
from pointsmall.schemas import Page

AuthRequest = Request[Principal, str, Any]
Points = Annotated[int | None, QueryParameter(ge=0)]


class ProductController(Controller):
    path = "/products"
    tags = ["Mall"]

    @get("/", guards=[requires("catalog:read")], responses=problem_responses(401, 403, 422))
    async def list_products(
        self,
        session: Session,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        category: FromQuery[str | None] = None,
        kind: FromQuery[schemas.ProductKind | None] = None,
        min_points: Points = None,
        max_points: Points = None,
        available: FromQuery[bool] = False,
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

    @post("/", guards=[requires("catalog:write")], responses=problem_responses(401, 403, 422))
    async def create_product(
        self, session: Session, data: JSONBody[schemas.ProductCreate]
    ) -> schemas.Product:
        return await services.create_product(session, data)

    @get(
        "/{product_id:str}",
        guards=[requires("catalog:read")],
        responses=problem_responses(401, 403, 404),
    )
    async def get_product(self, session: Session, product_id: FromPath[str]) -> schemas.Product:
        return await services.get_product(session, product_id)

    @patch(
        "/{product_id:str}",
        guards=[requires("catalog:write")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def update_product(
        self, session: Session, product_id: FromPath[str], data: JSONBody[schemas.ProductUpdate]
    ) -> schemas.Product:
        return await services.update_product(session, product_id, data)

    @post(
        "/{product_id:str}/codes",
        guards=[requires("catalog:write")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def add_codes(
        self, session: Session, product_id: FromPath[str], data: JSONBody[schemas.CodesIn]
    ) -> schemas.CodesAdded:
        """Upload a virtual product's codes (each one is delivered once); its stock grows
        by the codes that were new."""
        return await services.add_codes(session, product_id, data)


class CategoryController(Controller):
    path = "/categories"
    tags = ["Mall"]

    @get("/", guards=[requires("catalog:read")], responses=problem_responses(401, 403, 422))
    async def list_categories(
        self, session: Session, limit: Limit = 20, starting_after: StartingAfter = None
    ) -> Page[schemas.Category]:
        return await services.list_categories(session, limit=limit, starting_after=starting_after)

    @post("/", guards=[requires("catalog:write")], responses=problem_responses(401, 403, 422))
    async def create_category(
        self, session: Session, data: JSONBody[schemas.CategoryCreate]
    ) -> schemas.Category:
        return await services.create_category(session, data)

    @get(
        "/{category_id:str}",
        guards=[requires("catalog:read")],
        responses=problem_responses(401, 403, 404),
    )
    async def get_category(self, session: Session, category_id: FromPath[str]) -> schemas.Category:
        return await services.get_category(session, category_id)

    @patch(
        "/{category_id:str}",
        guards=[requires("catalog:write")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def update_category(
        self, session: Session, category_id: FromPath[str], data: JSONBody[schemas.CategoryUpdate]
    ) -> schemas.Category:
        return await services.update_category(session, category_id, data)


class OrderController(Controller):
    path = "/orders"
    tags = ["Mall"]

    @post(
        "/",
        guards=[requires("orders:write")],
        opt=NATIVE,
        responses=problem_responses(401, 403, 404, 409, 422, 502),
    )
    async def place(
        self, request: AuthRequest, data: JSONBody[schemas.OrderCreate]
    ) -> Response[schemas.Order]:
        """Redeem points (and cash): stock is reserved and points debited in one transaction,
        or nothing happens (409 `out_of_stock`, `insufficient_points`, `limit_exceeded`, …).
        With a cash part the order waits in `pending_payment` until the payment is confirmed."""
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
        responses=problem_responses(401, 403, 404),
    )
    async def get_order(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        return await orders.get_order(request.app.state.hot_pool, request.user.schema, order_id)

    @post(
        "/{order_id:str}/cancel",
        status_code=200,
        guards=[requires("orders:write")],
        responses=problem_responses(401, 403, 404, 409, 502),
    )
    async def cancel(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        """Cancel before fulfilment: points, stock and any paid cash come back (after
        fulfilment: 409 `invalid_order_state`; refund instead)."""
        return await self._change(request, order_id, "cancel")

    @post(
        "/{order_id:str}/fulfill",
        status_code=200,
        guards=[requires("orders:write")],
        responses=problem_responses(401, 403, 404, 409),
    )
    async def fulfill(self, request: AuthRequest, order_id: FromPath[str]) -> schemas.Order:
        return await self._change(request, order_id, "fulfill")

    @post(
        "/{order_id:str}/refund",
        status_code=200,
        guards=[requires("orders:write")],
        responses=problem_responses(401, 403, 404, 409, 422, 502),
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
        responses=problem_responses(401, 403, 404, 409, 422),
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

    @get("/", guards=[requires("orders:write")], responses=problem_responses(401, 403, 404))
    async def validate(self, request: AuthRequest, code: FromPath[str]) -> schemas.CouponOut:
        """Check a code at checkout: valid, redeemed or expired."""
        return await services.get_coupon(request.app.state.hot_pool, request.user.schema, code)

    @post(
        "/redeem",
        status_code=200,
        guards=[requires("orders:write")],
        responses=problem_responses(401, 403, 404, 409),
    )
    async def redeem(
        self,
        request: AuthRequest,
        code: FromPath[str],
        data: JSONBody[schemas.CouponRedeem | None] = None,
    ) -> schemas.CouponOut:
        """Use a code once; 409 `coupon_redeemed` or `coupon_expired` otherwise."""
        return await services.redeem_coupon(
            request.app.state.hot_pool, request.user.schema, code, data or schemas.CouponRedeem()
        )
