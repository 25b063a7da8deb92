from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import problem_responses
from pointsmall.tenancy import services
from pointsmall.tenancy.schemas import SignupCreate, SignupResult


class SignupController(Controller):
    path = "/signup"
    tags = ["Signup"]

    @post("/", responses=problem_responses(409, 422), security=[])
    async def signup(
        self, request: Request[Any, Any, Any], data: JSONBody[SignupCreate]
    ) -> SignupResult:
        """Sign a merchant up: its tenant and schema, first admin and first API key (shown once)."""
        state = request.app.state
        async with AsyncSession(state.engine, expire_on_commit=False) as session, session.begin():
            return await services.signup(session, state.migrations, data)
