"""The blueprints of the core; features (history, alerts) register their own in `init_app`."""
from .auth import bp as auth
from .executions import bp as executions
from .health import bp as health
from .ingest import bp as ingest
from .openapi import bp as openapi
from .settings import bp as settings

BLUEPRINTS = [auth, settings, ingest, executions, openapi, health]
