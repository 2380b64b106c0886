"""The blueprints, one per capability."""
from .alerts import bp as alerts
from .auth import bp as auth
from .details import bp as details
from .executions import bp as executions
from .ingest import bp as ingest
from .settings import bp as settings

BLUEPRINTS = [auth, settings, ingest, executions, details, alerts]
