"""The blueprints, one per capability."""
from .alerts import bp as alerts
from .auth import bp as auth
from .executions import bp as executions
from .history import bp as history
from .ingest import bp as ingest
from .settings import bp as settings

BLUEPRINTS = [auth, settings, ingest, history, executions, alerts]
