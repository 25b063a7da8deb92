from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.members import schemas, services
from pointsmall.pagination import Limit, StartingAfter
from pointsmall.schemas import Page


class MemberController(Controller):
    path = "/members"
    tags = ["Members"]

    @post("/", guards=[requires("points:write")], responses=problem_responses(401, 403, 409, 422))
    async def create_member(
        self, session: Session, data: JSONBody[schemas.MemberCreate]
    ) -> schemas.Member:
        """Enrol a member; `external_id` is the merchant's own customer id (unique)."""
        return services.to_schema(await services.create(session, data))

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 422))
    async def list_members(
        self,
        session: Session,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        external_id: Annotated[str | None, QueryParameter(max_length=255)] = None,
    ) -> Page[schemas.Member]:
        """Members, newest first; `external_id` finds the one with that customer id."""
        return await services.list_members(session, limit, starting_after, external_id)

    @get(
        "/{member_id:str}",
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 404),
    )
    async def get_member(self, session: Session, member_id: FromPath[str]) -> schemas.Member:
        return services.to_schema(await services.get(session, member_id))

    @patch(
        "/{member_id:str}",
        guards=[requires("points:write")],
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def update_member(
        self, session: Session, member_id: FromPath[str], data: JSONBody[schemas.MemberUpdate]
    ) -> schemas.Member:
        return services.to_schema(await services.update(session, member_id, data))
