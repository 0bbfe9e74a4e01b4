"""create_app(): assembles plugins, routes and configuration. No logic lives here."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from webapp import __version__
from webapp.accounts.api import TokenController
from webapp.cli import CLIPlugin
from webapp.compat.api import compat_handlers
from webapp.db import sqlalchemy_config
from webapp.errors import exception_handlers
from webapp.forms.api import FormController
from webapp.http import require_json
from webapp.logging import configure_logging
from webapp.responses.api import ResponseController, SubmissionController
from webapp.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    api = Router(
        path="/",
        route_handlers=[FormController, SubmissionController, ResponseController, TokenController,
                        *compat_handlers],
        before_request=require_json,
    )
    return Litestar(
        route_handlers=[api],
        plugins=[SQLAlchemyPlugin(config=sqlalchemy_config(settings)), CLIPlugin()],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="Formwright API", version=__version__, path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.max_body_bytes,
        state=State({"settings": settings}),
        debug=False,
        logging_config=None,
    )
