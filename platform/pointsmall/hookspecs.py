"""The hooks plugins implement. Every hook is named `pointsmall_…` and documented; a test
fails when one is not. A hook may return its answer or an awaitable of it; a plugin that is not the
provider asked for answers None at once (not an awaitable of None), so the next plugin is asked."""

from typing import Any

import pluggy

from pointsmall.payments.contracts import PaymentIntent, PaymentRequest, RefundRequest

hookspec = pluggy.HookspecMarker("pointsmall")


@hookspec
def pointsmall_payment_providers() -> list[str]:
    """Name the payment providers this plugin implements (orders choose one by name)."""
    return []


@hookspec(firstresult=True)
def pointsmall_create_payment(provider: str, request: PaymentRequest) -> Any:
    """Start collecting an order's cash part with `provider`; return a `PaymentIntent`, or
    None when this plugin is not that provider."""


@hookspec(firstresult=True)
def pointsmall_payment_status(provider: str, payment_id: str) -> Any:
    """Ask `provider` how the payment `payment_id` stands; return a `PaymentIntent`, or None
    when this plugin is not that provider."""


@hookspec(firstresult=True)
def pointsmall_refund_payment(provider: str, request: RefundRequest) -> Any:
    """Give back a paid cash part through `provider`; return the provider's refund id, or None
    when this plugin is not that provider."""


__all__ = ["PaymentIntent", "PaymentRequest", "RefundRequest", "hookspec"]
