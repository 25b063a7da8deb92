"""Random earn/spend/reverse/expire/release sequences, with a controlled clock, against a
plain in-memory model of the ledger. Balances, lots and history must agree at every step,
and the database invariants must hold throughout."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.errors import ApiError
from pointsmall.hotpath import create_hot_pool
from pointsmall.ledger import schemas, services
from pointsmall.ledger.models import Balance, LedgerTransaction, Lot, PointType
from pointsmall.members.models import Member
from pointsmall.migrations import tenant_migrations
from pointsmall.settings import Settings
from pointsmall.tenancy.services import provision
from pointsmall_tenants import create_pooled_engine
from tests.ledger.invariants import assert_ledger_invariants

PENDING = timedelta(days=2)
LIFETIME = timedelta(days=10)
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class ModelLot:
    id: int  # creation order, as the database's serial
    amount: int
    remaining: int
    pending: bool
    available_at: datetime
    expires_at: datetime
    expired: int = 0


@dataclass
class ModelTxn:
    kind: str
    points: int  # the signed change, as the ledger reports it
    lot: ModelLot | None = None
    draws: list[tuple[ModelLot, int]] = field(default_factory=list)
    reversed: bool = False


class Model:
    """The ledger's rules, written plainly."""

    def __init__(self, allow_negative: bool) -> None:
        self.allow_negative = allow_negative
        self.available = self.pending = self.lifetime = 0
        self.lots: list[ModelLot] = []
        self.txns: dict[str, ModelTxn] = {}

    def fill(self, lot: ModelLot, points: int) -> None:
        paid = min(points, max(0, -self.available))
        lot.remaining += points - paid
        self.available += points

    def draw(
        self, points: int, now: datetime, *, include_expired: bool
    ) -> list[tuple[ModelLot, int]]:
        draws = []
        candidates = [
            lot
            for lot in self.lots
            if lot.remaining > 0 and not lot.pending and (include_expired or lot.expires_at > now)
        ]
        for lot in sorted(candidates, key=lambda lot: (lot.expires_at, lot.id)):
            if points == 0:
                break
            take = min(points, lot.remaining)
            lot.remaining -= take
            points -= take
            draws.append((lot, take))
        return draws

    def spendable(self, now: datetime) -> int:
        return sum(lot.remaining for lot in self.lots if not lot.pending and lot.expires_at > now)

    def earn(self, txn: str, points: int, now: datetime) -> None:
        lot = ModelLot(len(self.lots), points, points, True, now + PENDING, now + LIFETIME)
        self.lots.append(lot)
        self.pending += points
        self.lifetime += points
        self.txns[txn] = ModelTxn("earn", points, lot=lot)

    def spend(self, txn: str, points: int, now: datetime) -> None:
        draws = self.draw(points, now, include_expired=False)
        self.txns[txn] = ModelTxn("spend", -points, draws=draws)
        self.available -= points

    def can_reverse(self, txn: str) -> bool:
        t = self.txns[txn]
        if t.kind != "earn" or t.lot is None or t.lot.pending or self.allow_negative:
            return True
        return t.lot.amount - t.lot.expired - t.lot.remaining <= 0

    def reverse(self, target: str, txn: str, now: datetime) -> None:
        t = self.txns[target]
        t.reversed = True
        reversal = self.txns[txn] = ModelTxn("reverse", 0, reversed=True)
        if t.kind == "earn" and t.lot is not None:
            lot = t.lot
            if lot.pending:
                reversal.points = -lot.remaining
                self.pending -= lot.remaining
                lot.remaining = 0
                return
            total = lot.amount - lot.expired
            short = total - lot.remaining
            lot.remaining = 0
            if short > 0:
                self.draw(short, now, include_expired=True)
            self.available -= total
            reversal.points = -total
        else:
            for lot, amount in sorted(t.draws, key=lambda d: d[0].id):
                if lot.expires_at > now:
                    self.fill(lot, amount)
                    reversal.points += amount

    def sweep(self, now: datetime) -> None:
        for lot in self.lots:  # release first, in lot order
            if lot.pending and lot.remaining > 0 and lot.available_at <= now:
                self.pending -= lot.remaining
                points, lot.remaining, lot.pending = lot.remaining, 0, False
                self.fill(lot, points)
        for lot in self.lots:
            if lot.remaining > 0 and lot.expires_at <= now:
                lot.expired += lot.remaining
                if lot.pending:
                    self.pending -= lot.remaining
                else:
                    self.available -= lot.remaining
                lot.remaining = 0


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = create_pooled_engine(self.url, pool_size=2)
        self.pool: asyncpg.Pool = self.run(
            create_hot_pool(Settings(database_url=self.url, db_pool_size=2))
        )
        self.now = START
        self.model = Model(False)
        self.schema = self.member = ""

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.run(self.engine.dispose())
        self.loop.close()

    @initialize(allow_negative=st.booleans())
    def setup_tenant(self, allow_negative: bool) -> None:
        self.model = Model(allow_negative)

        async def go() -> tuple[str, str]:
            async with (
                AsyncSession(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                tenant = await provision(session, tenant_migrations(), name="Hypothesis", slug=None)
            schema = "t_" + tenant.id.split("_", 1)[1]
            member = f"mem_{uuid.uuid4().hex[:26]}".replace("i", "1").replace("l", "1")
            async with self.engine.begin() as conn:
                bound = await conn.execution_options(schema_translate_map={None: schema})
                await bound.execute(
                    insert(PointType).values(
                        key="hyp",
                        name="Hyp",
                        expiry_policy="rolling",
                        expiry_days=LIFETIME.days,
                        pending_policy="days",
                        pending_days=PENDING.days,
                        allow_negative=allow_negative,
                    )
                )
                await bound.execute(
                    insert(Member).values(
                        id=member, external_id="m", attributes={}, status="active"
                    )
                )
            return schema, member

        self.schema, self.member = self.run(go())

    @rule(hours=st.integers(min_value=1, max_value=24 * 4))
    def advance(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(points=st.integers(min_value=1, max_value=100))
    def earn(self, points: int) -> None:
        data = schemas.EarnCreate(
            member_id=self.member, points=points, reason="r", point_type="hyp"
        )
        written = self.run(
            services.earn(self.pool, self.schema, data, granted_by="hyp", now=self.now)
        )
        self.model.earn(written.transaction.id, points, self.now)

    @rule(points=st.integers(min_value=1, max_value=150))
    def spend(self, points: int) -> None:
        data = schemas.SpendCreate(
            member_id=self.member, points=points, reason="r", point_type="hyp"
        )
        if self.model.spendable(self.now) < points:
            with pytest.raises(ApiError) as refused:
                self.run(
                    services.spend(self.pool, self.schema, data, granted_by="hyp", now=self.now)
                )
            assert refused.value.code == "insufficient_points"
            return
        written = self.run(
            services.spend(self.pool, self.schema, data, granted_by="hyp", now=self.now)
        )
        self.model.spend(written.transaction.id, points, self.now)

    @precondition(lambda self: any(not t.reversed for t in self.model.txns.values()))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        open_txns = sorted(k for k, t in self.model.txns.items() if not t.reversed)
        target = data.draw(st.sampled_from(open_txns))
        call = services.reverse(
            self.pool,
            self.schema,
            target,
            schemas.ReverseCreate(),
            granted_by="hyp",
            now=self.now,
        )
        if not self.model.can_reverse(target):
            with pytest.raises(ApiError) as refused:
                self.run(call)
            assert refused.value.code == "points_already_spent"
            return
        written = self.run(call)
        self.model.reverse(target, written.transaction.id, self.now)

    @rule()
    def sweep(self) -> None:
        self.run(services.sweep(self.pool, self.schema, self.now))
        self.model.sweep(self.now)

    @invariant()
    def agrees_with_model(self) -> None:
        if not self.schema:
            return

        async def read() -> tuple[Any, list[int], dict[str, int]]:
            async with AsyncSession(self.engine) as s:
                bound = await s.connection(
                    execution_options={"schema_translate_map": {None: self.schema}}
                )
                balance = (
                    await bound.execute(select(Balance).where(Balance.point_type == "hyp"))
                ).first()
                lots = (await bound.execute(select(Lot.remaining).order_by(Lot.id))).scalars().all()
                history = await bound.execute(
                    select(LedgerTransaction.id, LedgerTransaction.points).where(
                        LedgerTransaction.kind.in_(["earn", "spend", "reverse"])
                    )
                )
                txns = {row.id: row.points for row in history}
            return balance, list(lots), txns

        balance, lots, txns = self.run(read())
        model = self.model
        if balance is None:
            assert model.available == model.pending == model.lifetime == 0
        else:
            assert (balance.available, balance.pending, balance.lifetime_earned) == (
                model.available,
                model.pending,
                model.lifetime,
            )
        assert lots == [lot.remaining for lot in model.lots]
        assert txns == {txn_id: t.points for txn_id, t in model.txns.items()}
        self.run(assert_ledger_invariants(self.engine, self.schema))


def test_ledger_matches_model(settings: Settings) -> None:
    LedgerMachine.url = settings.async_database_url
    run_state_machine_as_test(
        LedgerMachine,
        settings=hypothesis_settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
