from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody

from pointsmall.auth import services
from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.pagination import Limit, StartingAfter
from pointsmall.schemas import Page

AnyRequest = Request[Principal, str, Any]


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["API keys"]
    guards = [requires("admin")]

    @post("/", responses=problem_responses(401, 403, 422))
    async def create_key(
        self, request: AnyRequest, session: Session, data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyCreated:
        """A new key; its `secret` is in this response only."""
        return await services.issue(session, request.user.tenant_id, data)

    @get("/", responses=problem_responses(401, 403, 422))
    async def list_keys(
        self,
        request: AnyRequest,
        session: Session,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
    ) -> Page[ApiKeyOut]:
        """Keys, newest first, by prefix; secrets are never shown again."""
        return await services.list_keys(session, request.user.tenant_id, limit, starting_after)

    @delete("/{key_id:str}", status_code=200, responses=problem_responses(401, 403, 404))
    async def revoke_key(
        self, request: AnyRequest, session: Session, key_id: FromPath[str]
    ) -> ApiKeyOut:
        """Revoke a key: it stops working at once. Revoking twice keeps the first time."""
        revoked = await services.revoke(session, request.user.tenant_id, key_id)
        request.app.state.principals.forget(revoked.id)
        return revoked
