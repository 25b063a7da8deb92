from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.db import TenantDb
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.pagination import Limit, StartingAfter
from pointsmall.schemas import Page
from pointsmall.webhooks import relay, schemas, services

AuthRequest = Request[Principal, str, Any]
NoticeCursor = Annotated[
    str | None,
    QueryParameter(
        max_length=22,
        pattern=r"^ntc_[0-9]{1,18}$",
        description="A cursor: the last notice id of the previous page.",
    ),
]


def _enqueue_after_commit(
    request: AuthRequest, jobs: list[tuple[str, str, int]], *, bring_forward: bool = False
) -> None:
    db: TenantDb = request.state.tenant_db
    state = request.app.state

    async def enqueue() -> None:
        await relay.enqueue(
            state.redis,
            state.settings.webhook_queue,
            request.user.schema,
            jobs,
            bring_forward=bring_forward,
        )

    db.after_commit.append(enqueue)


class WebhookEndpointController(Controller):
    path = "/webhook-endpoints"
    tags = ["Webhooks"]
    guards = [requires("admin")]

    @get("/", responses=problem_responses(401, 403, 422))
    async def list_endpoints(
        self, session: Session, limit: Limit = 20, starting_after: StartingAfter = None
    ) -> Page[schemas.Endpoint]:
        return await services.list_endpoints(session, limit=limit, starting_after=starting_after)

    @post("/", responses=problem_responses(401, 403, 422))
    async def create_endpoint(
        self, request: AuthRequest, session: Session, data: JSONBody[schemas.EndpointCreate]
    ) -> schemas.Endpoint:
        """The answer carries the endpoint's `secret` (also at `GET …/{id}/secret`). A URL
        that resolves to a loopback, private, link-local or reserved address is 422
        `unsafe_url`; outside development it must be https."""
        return await services.create_endpoint(session, request.app.state.settings, data)

    @get("/{endpoint_id:str}", responses=problem_responses(401, 403, 404))
    async def get_endpoint(self, session: Session, endpoint_id: FromPath[str]) -> schemas.Endpoint:
        return await services.get_endpoint(session, endpoint_id)

    @patch("/{endpoint_id:str}", responses=problem_responses(401, 403, 404, 422))
    async def update_endpoint(
        self,
        request: AuthRequest,
        session: Session,
        endpoint_id: FromPath[str],
        data: JSONBody[schemas.EndpointUpdate],
    ) -> schemas.Endpoint:
        """`enabled: true` re-enables a disabled endpoint (cancelled deliveries stay so;
        retry them by message)."""
        return await services.update_endpoint(
            session, request.app.state.settings, endpoint_id, data
        )

    @delete("/{endpoint_id:str}", responses=problem_responses(401, 403, 404))
    async def delete_endpoint(self, session: Session, endpoint_id: FromPath[str]) -> None:
        await services.delete_endpoint(session, endpoint_id)

    @get("/{endpoint_id:str}/secret", responses=problem_responses(401, 403, 404))
    async def get_secret(
        self, request: AuthRequest, session: Session, endpoint_id: FromPath[str]
    ) -> schemas.Secret:
        return await services.get_secret(session, request.app.state.settings, endpoint_id)

    @post(
        "/{endpoint_id:str}/rotate-secret",
        status_code=200,
        responses=problem_responses(401, 403, 404),
    )
    async def rotate_secret(
        self, request: AuthRequest, session: Session, endpoint_id: FromPath[str]
    ) -> schemas.Secret:
        """A new secret; the old one keeps signing beside it for 24 hours."""
        return await services.rotate_secret(session, request.app.state.settings, endpoint_id)

    @get("/{endpoint_id:str}/messages", responses=problem_responses(401, 403, 404, 422))
    async def list_messages(
        self,
        session: Session,
        endpoint_id: FromPath[str],
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        status: FromQuery[Literal["pending", "succeeded", "failed", "cancelled"] | None] = None,
    ) -> Page[schemas.Delivery]:
        """The endpoint's messages, newest first, with their delivery state."""
        return await services.list_deliveries(
            session, endpoint_id, limit=limit, starting_after=starting_after, status=status
        )

    @get("/{endpoint_id:str}/notices", responses=problem_responses(401, 403, 404, 422))
    async def list_notices(
        self,
        session: Session,
        endpoint_id: FromPath[str],
        limit: Limit = 20,
        starting_after: NoticeCursor = None,
    ) -> Page[schemas.Notice]:
        """Why the endpoint was disabled, if it was (410 Gone, or five days of failures),
        newest first."""
        return await services.list_notices(
            session, endpoint_id, limit=limit, starting_after=starting_after
        )

    @post("/{endpoint_id:str}/test", status_code=202, responses=problem_responses(401, 403, 404))
    async def send_test(
        self, request: AuthRequest, session: Session, endpoint_id: FromPath[str]
    ) -> Response[dict[str, str]]:
        """Send a `webhook.test` message to this endpoint now."""
        message_id, endpoint = await services.send_test(
            session, request.user.tenant_id, endpoint_id, livemode=request.user.livemode
        )
        _enqueue_after_commit(request, [(message_id, endpoint, 1)])
        return Response({"message_id": message_id}, status_code=202)


class WebhookMessageController(Controller):
    path = "/webhook-messages/{message_id:str}"
    tags = ["Webhooks"]
    guards = [requires("admin")]

    @get("/", responses=problem_responses(401, 403, 404))
    async def get_message(self, session: Session, message_id: FromPath[str]) -> schemas.Message:
        """The message as sent, its deliveries and every attempt (status, latency, excerpt)."""
        return await services.get_message(session, message_id)

    @post("/retry", status_code=202, responses=problem_responses(401, 403, 404, 422))
    async def retry(
        self,
        request: AuthRequest,
        session: Session,
        message_id: FromPath[str],
        data: JSONBody[schemas.RetryIn | None] = None,
    ) -> Response[dict[str, list[str]]]:
        """Send the message again (same `webhook-id`), to one endpoint or all it went to."""
        jobs = await services.retry_message(
            session, message_id, (data or schemas.RetryIn()).endpoint_id
        )
        # The attempt may already be scheduled (a failing delivery's next retry): hurry it.
        _enqueue_after_commit(request, jobs, bring_forward=True)
        return Response({"endpoint_ids": [e for _, e, _ in jobs]}, status_code=202)
