"""The API docs page, served whole by the app: Swagger UI's script, styles and icon are
vendored here (`swagger-ui/`, version and checksums in `VENDORED.md`), so `/schema` works
with no network beyond the API itself. Swagger UI draws with the browser's own fonts.

`/schema` and `/schema/swagger` are Swagger UI; `/schema/openapi.json` (and `.yaml`) the
document; the files are under `/schema/static/swagger-ui-<version>/`, cached a year (the
version is in the path).
"""

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import (
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.static_files import create_static_files_router

SWAGGER_UI_VERSION = "5.35.0"
SWAGGER_UI_DIR = Path(__file__).parent / "swagger-ui"
ASSETS_PATH = f"/static/swagger-ui-{SWAGGER_UI_VERSION}"


class LocalSwaggerUI(SwaggerRenderPlugin):
    """Swagger UI whose every file comes from the app (under the schema's path)."""

    def __init__(self, schema_path: str = "/schema") -> None:
        base = schema_path.rstrip("/") + ASSETS_PATH
        super().__init__(
            js_url=f"{base}/swagger-ui-bundle.js",
            css_url=f"{base}/swagger-ui.css",
            standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
            path="/swagger",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # "</" inside a <script> would end it early; JSON reads "<\/" as "</".
        spec = self.render_json(request, openapi_schema).replace(b"</", b"<\\/")
        title = str(openapi_schema["info"]["title"]).replace("<", "&lt;")
        head = (
            f"<!DOCTYPE html><html><head><title>{title}</title>{self.favicon}"
            '<meta charset="utf-8"/>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link href="{self.css_url}" rel="stylesheet">'
            f'<script src="{self.js_url}"></script>'
            f'<script src="{self.standalone_preset_js_url}"></script>'
            "</head><body><div id='swagger-container'></div><script>"
            "const ui = SwaggerUIBundle({spec: "
        ).encode()
        tail = (
            b", dom_id: '#swagger-container', deepLinking: true, validatorUrl: null,"
            b" presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]"
            b"});</script></body></html>"
        )
        return head + spec + tail

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[SWAGGER_UI_DIR],
                name="swagger-ui-assets",
                cache_control=CacheControlHeader(max_age=31_536_000, public=True, immutable=True),
            )
        )


def docs_pages(schema_path: str = "/schema") -> list[OpenAPIRenderPlugin]:
    """The render plugins for `OpenAPIConfig(render_plugins=...)`: Swagger UI (the default
    page) and the YAML document; the JSON one is always there."""
    return [LocalSwaggerUI(schema_path), YamlRenderPlugin()]
