from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from pointsmall.db import TenantBase


class IdempotencyKey(TenantBase):
    """A POST's key, its request fingerprint and the response it produced.

    Written in the same transaction as the change it guards, so a key is stored exactly
    when its change is committed.
    """

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    response_status: Mapped[int] = mapped_column(Integer, default=0)
    response_body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    response_type: Mapped[str] = mapped_column(String(100), default="application/json")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
