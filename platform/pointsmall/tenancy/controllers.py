from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import FieldError, InvalidInput, problem_responses
from pointsmall.idempotency.middleware import REPLAYED_HEADER, fingerprint, valid_key
from pointsmall.tenancy import services, signup_keys
from pointsmall.tenancy.schemas import SignupCreate, SignupResult


class SignupController(Controller):
    path = "/signup"
    tags = ["Signup"]

    @post(
        "/",
        responses=problem_responses(409, 422, 503),
        security=[],
    )
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SignupCreate],
    ) -> Response[SignupResult]:
        """Sign a merchant up: its tenant and schema, first admin and first API key (shown
        once). A taken slug is 409 `slug_taken`. With an `Idempotency-Key` (kept 24 hours,
        across all signups) a retry gets the first answer, with the same API key, and makes
        no second tenant."""
        state = request.app.state
        settings = state.settings
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not valid_key(idempotency_key):
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
                errors=[FieldError(field="Idempotency-Key", message="1 to 255 printable ASCII")],
            )
        services.check_signup(data)
        digest = b""
        if idempotency_key is not None:
            digest = fingerprint(
                "POST", request.scope["path"], request.scope["query_string"], await request.body()
            )
        password_hash = await services.hash_password(data.password)
        async with AsyncSession(state.engine, expire_on_commit=False) as session, session.begin():
            if idempotency_key is not None:
                stored = await signup_keys.claim(session, settings, idempotency_key, digest)
                if stored is not None:
                    replay = msgspec.json.decode(stored, type=SignupResult)
                    return Response(replay, status_code=201, headers={REPLAYED_HEADER: "true"})
            result = await services.signup(session, state.migrations, data, password_hash)
            if idempotency_key is not None:
                answer = msgspec.json.encode(result)
                await signup_keys.store(session, settings, idempotency_key, digest, answer)
        return Response(result, status_code=201)
