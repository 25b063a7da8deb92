"""The ledger's invariants, checked straight in the database after every scenario."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def assert_ledger_invariants(engine: AsyncEngine, schema: str) -> None:
    async with engine.connect() as conn:

        async def rows(sql: str) -> list[tuple[object, ...]]:
            result = await conn.execute(text(sql.replace("{s}", f'"{schema}"')))
            return [tuple(r) for r in result]

        unbalanced = await rows(
            "SELECT transaction_id, sum(amount) FROM {s}.postings"
            " GROUP BY 1 HAVING sum(amount) <> 0"
        )
        assert unbalanced == [], f"transactions whose postings do not sum to zero: {unbalanced}"

        lots_disagree = await rows(
            """
            SELECT b.member_id, b.point_type, b.available, b.pending,
                   coalesce(sum(l.remaining) FILTER (WHERE NOT l.pending), 0) AS in_lots,
                   coalesce(sum(l.remaining) FILTER (WHERE l.pending), 0) AS pending_lots
              FROM {s}.balances b
              LEFT JOIN {s}.lots l ON l.member_id = b.member_id AND l.point_type = b.point_type
             GROUP BY b.member_id, b.point_type, b.available, b.pending
            HAVING greatest(b.available, 0)
                   <> coalesce(sum(l.remaining) FILTER (WHERE NOT l.pending), 0)
                OR b.pending <> coalesce(sum(l.remaining) FILTER (WHERE l.pending), 0)
            """
        )
        assert lots_disagree == [], f"balances that disagree with their lots: {lots_disagree}"

        postings_disagree = await rows(
            """
            SELECT b.member_id, b.point_type, b.available, b.pending, w.total, p.total
              FROM {s}.balances b
              LEFT JOIN LATERAL (SELECT coalesce(sum(amount), 0) AS total FROM {s}.postings
                                  WHERE account = 'wallet' AND member_id = b.member_id
                                    AND point_type = b.point_type) w ON true
              LEFT JOIN LATERAL (SELECT coalesce(sum(amount), 0) AS total FROM {s}.postings
                                  WHERE account = 'pending' AND member_id = b.member_id
                                    AND point_type = b.point_type) p ON true
             WHERE b.available <> w.total OR b.pending <> p.total
            """
        )
        assert postings_disagree == [], f"balances that disagree with postings: {postings_disagree}"

        negative = await rows(
            """
            SELECT b.member_id, b.point_type, b.available FROM {s}.balances b
              JOIN {s}.point_types t ON t.key = b.point_type
             WHERE (b.available < 0 AND NOT t.allow_negative) OR b.pending < 0
            """
        )
        assert negative == [], f"balances below zero where the type allows no debt: {negative}"

        lifetime = await rows(
            """
            SELECT b.member_id, b.point_type, b.lifetime_earned, coalesce(sum(t.points), 0)
              FROM {s}.balances b
              LEFT JOIN {s}.ledger_transactions t ON t.member_id = b.member_id
               AND t.point_type = b.point_type AND t.points > 0 AND t.kind IN ('earn', 'adjust')
             GROUP BY 1, 2, 3 HAVING b.lifetime_earned <> coalesce(sum(t.points), 0)
            """
        )
        assert lifetime == [], f"lifetime_earned is not the sum of credits: {lifetime}"

        events = await rows(
            """
            SELECT t.id, count(o.id) FROM {s}.ledger_transactions t
              LEFT JOIN {s}.outbox o ON o.payload->>'id' = t.id
             GROUP BY t.id HAVING count(o.id) <> 1
            """
        )
        assert events == [], f"transactions without exactly one outbox event: {events}"
