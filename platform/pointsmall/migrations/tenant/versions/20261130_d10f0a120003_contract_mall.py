"""contract, mall: one money format, shipping_address on orders, the split's refusals are 409

`mall_minor_digits` knows the ISO 4217 currencies with 4 minor units (CLF, UYW), as the API's
table does (`pointsmall.mall.money`); `mall_money` already writes exactly the currency's
digits. `mall_order_json` shows `shipping_address`, and every key of `payment` (null when
the provider gave none). `mall_place_order`'s refusals of a
valid body that the prices or the tenant's share refuse (`invalid_split`,
`points_share_exceeded`, `inexact_split`, `cash_mismatch`) are 409 (they were 422).

Revision ID: d10f0a120003
Revises: d10f0a120002
Create Date: 2026-11-30 06:00:00.000000
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "d10f0a120003"
down_revision: str | None = "d10f0a120002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MINOR_DIGITS = r"""
-- ISO 4217 minor units where they are not 2.
CREATE OR REPLACE FUNCTION mall_minor_digits(p_currency text) RETURNS int
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE
    WHEN p_currency IN ('BIF','CLP','DJF','GNF','ISK','JPY','KMF','KRW','PYG','RWF','UGX','UYI',
                        'VND','VUV','XAF','XOF','XPF') THEN 0
    WHEN p_currency IN ('BHD','IQD','JOD','KWD','LYD','OMR','TND') THEN 3
    WHEN p_currency IN ('CLF','UYW') THEN 4
    ELSE 2 END
$fn$;
"""

# As revision c4d8e2a1f7b3 made it.
PREVIOUS_MINOR_DIGITS = r"""
CREATE OR REPLACE FUNCTION mall_minor_digits(p_currency text) RETURNS int
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE
    WHEN p_currency IN ('BIF','CLP','DJF','GNF','ISK','JPY','KMF','KRW','PYG','RWF','UGX','UYI',
                        'VND','VUV','XAF','XOF','XPF') THEN 0
    WHEN p_currency IN ('BHD','IQD','JOD','KWD','LYD','OMR','TND') THEN 3
    ELSE 2 END
$fn$;
"""

SQL = r"""
CREATE OR REPLACE FUNCTION mall_order_json(p_id text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $fn$
  SELECT jsonb_build_object(
    'id', o.id, 'object', 'order', 'member_id', o.member_id, 'status', o.status,
    'points', o.points,
    'lines', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'product_id', l.product_id, 'quantity', l.quantity, 'points', l.points,
        'cash', CASE WHEN l.cash IS NOT NULL AND o.currency IS NOT NULL
                     THEN mall_money(l.cash, o.currency) END) ORDER BY l.product_id)
      FROM order_lines l WHERE l.order_id = o.id), '[]'::jsonb),
    'points_total', (SELECT coalesce(sum(l.points), 0) FROM order_lines l WHERE l.order_id = o.id),
    'spend_transaction', o.spend_transaction,
    'created_at', ledger_ts(o.created_at),
    'coupons', coalesce((SELECT jsonb_agg(c.code ORDER BY c.code) FROM coupons c
                         WHERE c.order_id = o.id), '[]'::jsonb),
    'codes', CASE WHEN o.status IN ('confirmed', 'fulfilled') THEN
               coalesce((SELECT jsonb_agg(v.code ORDER BY v.id) FROM virtual_codes v
                         WHERE v.order_id = o.id), '[]'::jsonb)
             ELSE '[]'::jsonb END,
    -- Every code the member was shown, with what became of it: 'delivered', or 'void' once
    -- the order is cancelled or refunded (a shown code never goes back to the pool). An
    -- unpaid order's reserved codes are not shown.
    'virtual_codes', CASE WHEN o.status <> 'pending_payment' THEN
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'code', v.code, 'product_id', v.product_id,
                   'status', CASE WHEN o.status IN ('confirmed', 'fulfilled') THEN 'delivered'
                                  ELSE 'void' END) ORDER BY v.id)
                 FROM virtual_codes v WHERE v.order_id = o.id), '[]'::jsonb)
             ELSE '[]'::jsonb END,
    'cash', CASE WHEN o.cash IS NOT NULL THEN mall_money(o.cash, o.currency) END,
    'currency', o.currency,
    -- Every key of the payment, null when the provider gave none (yet).
    'payment', CASE WHEN o.payment IS NOT NULL THEN jsonb_build_object(
        'provider', o.payment -> 'provider', 'status', o.payment -> 'status',
        'payment_id', o.payment -> 'payment_id', 'redirect_url', o.payment -> 'redirect_url',
        'expires_at', o.payment -> 'expires_at', 'refund_id', o.payment -> 'refund_id') END,
    'status_reason', o.status_reason,
    'refund_transaction', o.refund_transaction,
    'shipping_address', o.shipping_address)
  FROM orders o WHERE o.id = p_id
$fn$;

CREATE OR REPLACE FUNCTION mall_place_order(
  p_key text, p_fingerprint bytea, p_order text, p_member text, p_lines jsonb,
  p_points bigint, p_cash numeric, p_currency text, p_provider text, p_timeout interval,
  p_granted_by text, p_shipping jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_replay jsonb := ledger_claim_key(p_key, p_fingerprint);
  v_now timestamptz := now();
  v_member text;
  v_tier text;
  v_set settings%ROWTYPE;
  v_product products%ROWTYPE;
  v_line jsonb;
  v_qty int;
  v_had bigint;
  v_from timestamptz;
  v_to timestamptz;
  v_local timestamp;
  v_points_total bigint := 0;
  v_priced bigint := 0;  -- the points of lines that also have a cash price
  v_cash_total numeric := 0;
  v_unit numeric;
  v_step bigint;
  v_ceiling bigint;
  v_max bigint;
  v_points bigint;
  v_cash numeric;
  v_pending boolean;
  v_below bigint;
  v_spent jsonb;
  v_body jsonb;
  v_taken int;
  v_kinds text[] := '{}';
BEGIN
  IF v_replay IS NOT NULL THEN
    RETURN jsonb_build_object('replayed', true,
                              'order', mall_order_json(v_replay -> 'body' ->> 'id'));
  END IF;
  -- One member's orders queue here, so limits and balances are judged one at a time.
  SELECT m.id, mt.tier_key INTO v_member, v_tier
    FROM members m LEFT JOIN member_tiers mt ON mt.member_id = m.id
   WHERE m.id = p_member FOR UPDATE OF m;
  IF v_member IS NULL THEN PERFORM mall_fail('not_found', 'No such member.', 404); END IF;
  SELECT * INTO v_set FROM settings WHERE id = 1;

  FOR v_line IN SELECT value FROM jsonb_array_elements(p_lines) ORDER BY value ->> 'product_id'
  LOOP
    v_qty := (v_line ->> 'quantity')::int;
    SELECT * INTO v_product FROM products WHERE id = v_line ->> 'product_id';
    IF NOT FOUND THEN
      PERFORM mall_fail('not_found', 'No such product: ' || (v_line ->> 'product_id') || '.', 404);
    END IF;
    IF v_product.status <> 'active' THEN
      PERFORM mall_fail('product_unavailable',
        format('Product %s is %s and cannot be ordered.', v_product.id, v_product.status), 409);
    END IF;
    IF (v_product.available_from IS NOT NULL AND v_now < v_product.available_from)
       OR (v_product.available_until IS NOT NULL AND v_now >= v_product.available_until) THEN
      PERFORM mall_fail('not_available', 'The product is not available now.', 409);
    END IF;
    IF v_product.tiers IS NOT NULL AND (v_tier IS NULL OR NOT v_tier = ANY (v_product.tiers)) THEN
      PERFORM mall_fail('tier_restricted', 'The product is for other tiers.', 409);
    END IF;
    IF v_product.per_member_limit IS NOT NULL THEN
      SELECT coalesce(sum(l.quantity), 0) INTO v_had FROM order_lines l
        JOIN orders o ON o.id = l.order_id
       WHERE o.member_id = v_member AND l.product_id = v_product.id
         AND o.status NOT IN ('cancelled', 'refunded');
      IF v_had + v_qty > v_product.per_member_limit THEN
        PERFORM mall_fail('limit_exceeded',
          format('At most %s per member.', v_product.per_member_limit), 409);
      END IF;
    END IF;
    IF v_product.per_period_limit IS NOT NULL THEN
      -- The local day, ISO week or month, in the tenant's time zone.
      v_local := date_trunc(CASE v_product.limit_period WHEN 'week' THEN 'week'
                                 WHEN 'month' THEN 'month' ELSE 'day' END,
                            v_now AT TIME ZONE v_set.timezone);
      v_from := v_local AT TIME ZONE v_set.timezone;
      v_to := (v_local + CASE v_product.limit_period WHEN 'week' THEN interval '7 days'
                              WHEN 'month' THEN interval '1 month' ELSE interval '1 day' END)
              AT TIME ZONE v_set.timezone;
      SELECT coalesce(sum(l.quantity), 0) INTO v_had FROM order_lines l
        JOIN orders o ON o.id = l.order_id
       WHERE o.member_id = v_member AND l.product_id = v_product.id
         AND o.status NOT IN ('cancelled', 'refunded')
         AND o.created_at >= v_from AND o.created_at < v_to;
      IF v_had + v_qty > v_product.per_period_limit THEN
        PERFORM mall_fail('period_limit_exceeded',
          format('At most %s per %s.', v_product.per_period_limit, v_product.limit_period), 409);
      END IF;
    END IF;
    IF v_product.stock IS NOT NULL AND v_product.stock < v_qty THEN
      PERFORM mall_fail('out_of_stock', 'Not enough stock of ' || v_product.id || '.', 409);
    END IF;
    v_kinds := v_kinds || v_product.kind::text;
    v_points_total := v_points_total + v_product.points_price * v_qty;
    v_cash_total := v_cash_total + coalesce(v_product.cash_price, 0) * v_qty;
    IF v_product.cash_price IS NOT NULL THEN
      v_priced := v_priced + v_product.points_price * v_qty;
    END IF;
  END LOOP;

  -- The split. Its refusals are 409: the body is valid; the prices and the tenant's share
  -- are what it conflicts with. Points turn into cash only in whole minor units: v_step is the fewest points
  -- that make a whole number of them; the share is a ceiling, never rounded up. It bounds
  -- only the points paid toward lines with a cash price: a points-only price is points.
  v_unit := v_set.point_value * power(10::numeric, mall_minor_digits(v_set.currency));
  v_step := power(10::numeric, scale(v_unit))
            / gcd(v_unit * power(10::numeric, scale(v_unit)), power(10::numeric, scale(v_unit)));
  v_ceiling := v_points_total - v_priced
               + least(v_priced, floor(v_set.max_points_share * (v_priced * v_set.point_value
                                       + v_cash_total) / v_set.point_value)::bigint);
  v_max := v_ceiling - (((v_ceiling - v_points_total) % v_step) + v_step) % v_step;
  v_points := coalesce(p_points, v_max);
  IF v_points > v_points_total THEN
    PERFORM mall_fail('invalid_split',
      format('The order costs at most %s points.', v_points_total), 409, 'payment.points');
  END IF;
  IF v_points > v_max OR v_points < 0 THEN
    PERFORM mall_fail('points_share_exceeded',
      format('At most %s of the %s points may be paid in points (the tenant''s largest points share).',
             greatest(v_max, 0), v_points_total), 409, 'payment.points');
  END IF;
  IF (v_points_total - v_points) % v_step <> 0 THEN
    v_below := v_points - ((((v_points - v_points_total) % v_step) + v_step) % v_step);
    PERFORM mall_fail('inexact_split',
      format('%s points do not convert into whole %s minor units; pay %s or %s points.',
             v_points, v_set.currency, v_below, v_below + v_step), 409, 'payment.points');
  END IF;
  v_cash := round(v_cash_total + (v_points_total - v_points) * v_set.point_value,
                  mall_minor_digits(v_set.currency));
  IF p_cash IS NOT NULL AND (p_currency <> v_set.currency OR p_cash <> v_cash) THEN
    PERFORM mall_fail('cash_mismatch',
      format('The cash part is %s %s.', mall_money(v_cash, v_set.currency), v_set.currency),
      409, 'payment.cash');
  END IF;
  v_pending := v_cash > 0;

  INSERT INTO orders (id, member_id, status, points, shipping_address, cash, currency, payment,
                      payment_expires_at, created_at, updated_at)
  VALUES (p_order, v_member, CASE WHEN v_pending THEN 'pending_payment' ELSE 'confirmed' END,
          v_points, p_shipping,
          CASE WHEN v_pending THEN v_cash END, CASE WHEN v_pending THEN v_set.currency END,
          CASE WHEN v_pending THEN jsonb_build_object('provider', p_provider, 'status', 'pending',
                                    'expires_at', ledger_ts(v_now + p_timeout)) END,
          CASE WHEN v_pending THEN v_now + p_timeout END, v_now, v_now);
  INSERT INTO order_lines (order_id, product_id, quantity, points, cash)
  SELECT p_order, p.id, (l.value ->> 'quantity')::int,
         p.points_price * (l.value ->> 'quantity')::int, p.cash_price * (l.value ->> 'quantity')::int
    FROM jsonb_array_elements(p_lines) l JOIN products p ON p.id = l.value ->> 'product_id';

  -- Virtual products: set one code aside per unit (shown once the order is confirmed).
  FOR v_line IN SELECT l.value FROM jsonb_array_elements(p_lines) l
                 JOIN products p ON p.id = l.value ->> 'product_id' AND p.kind = 'virtual'
                WHERE 'virtual' = ANY (v_kinds)
  LOOP
    v_qty := (v_line ->> 'quantity')::int;
    WITH picked AS (
      SELECT id FROM virtual_codes WHERE product_id = v_line ->> 'product_id' AND order_id IS NULL
       ORDER BY id LIMIT v_qty FOR UPDATE SKIP LOCKED)
    UPDATE virtual_codes v SET order_id = p_order FROM picked WHERE v.id = picked.id;
    GET DIAGNOSTICS v_taken = ROW_COUNT;
    IF v_taken < v_qty THEN
      PERFORM mall_fail('out_of_stock',
        'Not enough codes left for ' || (v_line ->> 'product_id') || '.', 409);
    END IF;
  END LOOP;

  IF v_points > 0 THEN
    v_spent := ledger_debit('spend', v_member, 'points', v_points, 'order ' || p_order, p_order,
                            p_granted_by, v_now, NULL, NULL);
    UPDATE orders SET spend_transaction = v_spent -> 'body' ->> 'id' WHERE id = p_order;
  END IF;
  IF NOT v_pending AND 'coupon' = ANY (v_kinds) THEN PERFORM mall_issue_coupons(p_order); END IF;
  -- Stock last, in product-id order: a hot product's row stays locked only from here to
  -- the commit, and the conditional UPDATE is what makes overselling impossible.
  FOR v_line IN SELECT value FROM jsonb_array_elements(p_lines) ORDER BY value ->> 'product_id'
  LOOP
    v_qty := (v_line ->> 'quantity')::int;
    UPDATE products SET stock = stock - v_qty
     WHERE id = v_line ->> 'product_id' AND stock >= v_qty;  -- unlimited (NULL): no row
    IF NOT FOUND AND EXISTS (SELECT 1 FROM products WHERE id = v_line ->> 'product_id'
                                                      AND stock IS NOT NULL) THEN
      PERFORM mall_fail('out_of_stock',
        'Not enough stock of ' || (v_line ->> 'product_id') || '.', 409);
    END IF;
  END LOOP;
  v_body := mall_order_json(p_order);
  -- An order with a cash part is announced once the provider has made its payment (the
  -- caller writes the event then), so `order.created` carries the `payment_id`.
  IF NOT v_pending THEN PERFORM ledger_event('order.created', v_body); END IF;
  PERFORM ledger_store_key(p_key, 201, v_body);
  RETURN jsonb_build_object('replayed', false, 'order', v_body);
END $fn$;
"""


def _revision_d10f0a110002() -> ModuleType:
    """The revision that made the functions this one replaces (its `SQL` is the downgrade)."""
    path = Path(__file__).with_name("20261130_d10f0a110002_defects_mall.py")
    spec = importlib.util.spec_from_file_location("_tenant_d10f0a110002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.execute(MINOR_DIGITS)
    op.execute(SQL)


def downgrade() -> None:
    op.execute(PREVIOUS_MINOR_DIGITS)
    op.execute(_revision_d10f0a110002().SQL)
