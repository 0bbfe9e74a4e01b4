"""The ASGI entry point for production servers: `uvicorn webapp.asgi:app --workers N`."""

from webapp.app import create_app

app = create_app()
