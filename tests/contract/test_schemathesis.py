"""The document stays exact: schemathesis generates requests from `/schema/openapi.json`
for every operation, sends them to the live server with a real key, and checks every
answer against the document (all checks: no 5xx, documented statuses, content types and
headers, bodies matching their schemas, schema-valid input accepted, schema-violating
input refused, a deleted resource gone). A route that drifts from its document fails here.
"""

import asyncio
import sys
from pathlib import Path

from tests.conftest import TenantClient

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 10  # per operation and phase: enough to find drift, small enough for CI


async def test_every_operation_conforms(
    base_url: str, tenants: tuple[TenantClient, TenantClient]
) -> None:
    a, _ = tenants
    # Some data to walk through (schemathesis makes the rest from the document's links).
    member = (await a.http.post("/v1/members", json={"external_id": "st"})).json()["id"]
    await a.http.post("/v1/points/earn", json={"member_id": member, "points": 50, "reason": "x"})
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {a.api_key}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",  # the same cases every run, and no example database
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-20_000:]
