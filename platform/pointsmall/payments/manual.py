"""The built-in `manual` provider: the merchant collects the cash itself (at the till, by
bank transfer) and confirms it with `POST /v1/orders/{id}/confirm-payment`."""

from pointsmall.ids import new_id
from pointsmall.payments.contracts import PaymentIntent, PaymentRequest, RefundRequest
from pointsmall.plugins import hookimpl

NAME = "manual"


@hookimpl
def pointsmall_payment_providers() -> list[str]:
    return [NAME]


@hookimpl
def pointsmall_create_payment(provider: str, request: PaymentRequest) -> PaymentIntent | None:
    if provider != NAME:
        return None
    return PaymentIntent(payment_id=new_id("pay"), status="pending")


@hookimpl
def pointsmall_payment_status(provider: str, payment_id: str) -> PaymentIntent | None:
    # Only the merchant's API call knows; the confirm endpoint is the confirmation.
    return None


@hookimpl
def pointsmall_refund_payment(provider: str, request: RefundRequest) -> str | None:
    return new_id("re") if provider == NAME else None
