"""create_app(): assembles plugins, routes and configuration. No logic lives here."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from webapp import __version__
from webapp.accounts.api import TokenController
from webapp.accounts.pages import account_pages
from webapp.cli import CLIPlugin
from webapp.compat.api import compat_handlers
from webapp.db import closing_engine, sqlalchemy_config
from webapp.deliveries.api import DeliveryController, FormIntegrationController, IntegrationKindController
from webapp.deliveries.embedded import embedded_lifespan
from webapp.deliveries.pages import integration_pages
from webapp.errors import exception_handlers
from webapp.forms.api import FormController
from webapp.forms.dashboard import dashboard_pages
from webapp.forms.pages import builder_pages
from webapp.health import ops_handlers
from webapp.http import require_json
from webapp.logging import configure_logging
from webapp.observability import instrument, metrics_endpoint
from webapp.responses.api import ResponseController, SubmissionController
from webapp.responses.export_api import export_responses_csv
from webapp.responses.pages import respond_pages
from webapp.responses.results_pages import results_pages
from webapp.settings import Settings, get_settings
from webapp.warmup import warm_up
from webapp.web import csrf_config, page_router, template_config


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    api = Router(
        path="/",
        route_handlers=[FormController, SubmissionController, ResponseController, TokenController,
                        *compat_handlers, export_responses_csv,
                        IntegrationKindController, FormIntegrationController, DeliveryController],
        before_request=require_json,
    )
    # HTML pages (webapp/web.py): add a page module's handler list here.
    page_handlers = [*account_pages, *dashboard_pages, *respond_pages, *integration_pages, *builder_pages,
                     *results_pages]
    db_config = sqlalchemy_config(settings)
    engine = db_config.get_engine()
    return instrument(Litestar(
        route_handlers=[api, page_router(page_handlers), *ops_handlers, metrics_endpoint],
        template_config=template_config(),
        csrf_config=csrf_config(settings),
        plugins=[SQLAlchemyPlugin(config=db_config), CLIPlugin()],
        # Without a broker, deliveries run in-process from the outbox (EMBEDDED_DELIVERY=false: off).
        lifespan=[closing_engine(engine), *embedded_lifespan(settings, engine)],
        on_startup=[warm_up(settings, engine)],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="Formwright API", version=__version__, path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.max_body_bytes,
        state=State({"settings": settings}),
        debug=False,
        logging_config=None,
    ))
