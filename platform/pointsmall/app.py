"""The Litestar application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig

from pointsmall.auth.controllers import ApiKeyController
from pointsmall.auth.middleware import BearerAuthMiddleware
from pointsmall.auth.services import PrincipalCache
from pointsmall.cors import wrap_cors
from pointsmall.deps import provide_session
from pointsmall.errors import exception_handlers
from pointsmall.health import healthz, readyz, workers_health
from pointsmall.hotpath import create_hot_pool
from pointsmall.idempotency.middleware import UnitOfWorkMiddleware
from pointsmall.keyring import require_keys
from pointsmall.ledger.controllers import (
    MemberLedgerController,
    PointsController,
    PointTypeController,
    TransactionController,
)
from pointsmall.mall.controllers import (
    CategoryController,
    CouponController,
    OrderController,
    ProductController,
)
from pointsmall.manners import wrap_manners
from pointsmall.members.controllers import MemberController
from pointsmall.metrics import MetricsController
from pointsmall.migrations import tenant_migrations
from pointsmall.observability import configure_logging, wrap_outermost
from pointsmall.openapi import finish_on_startup
from pointsmall.resilience import fast_redis
from pointsmall.rules.controllers import (
    BacktestController,
    CheckInController,
    EventController,
    MemberTierController,
    RuleController,
    TierController,
)
from pointsmall.settings import Settings
from pointsmall.static import docs_pages
from pointsmall.strict_body import check_request
from pointsmall.tenancy.controllers import SignupController
from pointsmall.tenancy.settings_api import SettingsController
from pointsmall.webhooks.controllers import WebhookEndpointController, WebhookMessageController
from pointsmall_tenants import TenantAffineEngines, create_pooled_engine


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    require_keys(settings)

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        engine = create_pooled_engine(
            settings.async_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            recycle_seconds=settings.db_recycle_seconds,
            recycle_uses=settings.db_recycle_uses,
        )
        # Connects on first use and fails at once while Redis is away: the API starts and
        # serves reads and ledger writes without Redis (jobs wait; /readyz says degraded).
        redis = fast_redis(settings.redis_url or "redis://127.0.0.1:6379/0", settings.queue_name)
        tenant_engines = TenantAffineEngines(
            settings.async_database_url,
            shards=settings.db_pool_shards,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            recycle_seconds=settings.db_recycle_seconds,
            recycle_uses=settings.db_recycle_uses,
        )
        hot_pool = await create_hot_pool(settings)
        app.state.update(
            settings=settings,
            engine=engine,
            tenant_engines=tenant_engines,
            hot_pool=hot_pool,
            redis=redis,
            migrations=tenant_migrations(),
            principals=PrincipalCache(settings.auth_cache_seconds),
        )
        try:
            yield
        finally:
            await hot_pool.close()
            await tenant_engines.dispose()
            await redis.aclose()
            await engine.dispose()

    v1 = Router(
        path="/v1",
        route_handlers=[
            MemberController,
            ApiKeyController,
            PointsController,
            TransactionController,
            MemberLedgerController,
            PointTypeController,
            RuleController,
            EventController,
            CheckInController,
            TierController,
            MemberTierController,
            BacktestController,
            SettingsController,
            CategoryController,
            ProductController,
            OrderController,
            CouponController,
            WebhookEndpointController,
            WebhookMessageController,
        ],
        middleware=[BearerAuthMiddleware, UnitOfWorkMiddleware],
        dependencies={"session": Provide(provide_session, sync_to_thread=False)},
        security=[{"ApiKey": []}],
    )
    prometheus = PrometheusConfig(app_name="pointsmall", prefix="pointsmall", group_path=True)
    app = Litestar(
        route_handlers=[v1, SignupController, healthz, readyz, workers_health, MetricsController],
        lifespan=[resources],
        on_startup=[finish_on_startup],
        middleware=[prometheus.middleware],
        exception_handlers=exception_handlers,
        before_request=check_request,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Pointsmall API",
            version="1.0.0",
            path="/schema",
            render_plugins=docs_pages("/schema"),
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A tenant API key (pm_test_… / pm_live_…).",
                    )
                }
            ),
        ),
        logging_config=None,
    )
    wrap_manners(app)
    wrap_cors(app)  # outside the manners: a CORS preflight is answered before them
    wrap_outermost(app)
    return app
