"""What the payment hooks receive and return: everything a real provider (Alipay, WeChat
Pay, Stripe) needs to take and give back an order's cash part."""

from typing import Literal

import msgspec

PaymentStatus = Literal["pending", "succeeded", "failed"]


class PaymentRequest(msgspec.Struct, frozen=True):
    tenant_id: str
    order_id: str  # the merchant-side reference the provider shows and reports back
    amount: str  # a decimal string with exactly the currency's minor-unit digits
    currency: str
    description: str
    return_url: str | None
    # Stable per order: a provider that sees it twice makes one payment, not two.
    idempotency_key: str
    expires_at: str  # RFC 3339 in UTC (`Z`): after this the order takes no payment


class PaymentIntent(msgspec.Struct, frozen=True):
    payment_id: str
    status: PaymentStatus
    # Where to send the member to pay (a hosted page or a QR code URL), if the provider has one.
    redirect_url: str | None = None


class RefundRequest(msgspec.Struct, frozen=True):
    tenant_id: str
    order_id: str
    payment_id: str
    amount: str
    currency: str
    idempotency_key: str
