"""Runwatch's data: the database handle and every table."""
from .db import create_schema, database, init_database
from .executions import Execution, ExecutionPayload, Step, StepPayload, Workflow
from .users import ApiToken, User
from .rollups import RunRollup  # also registers the history rollup write hook

# Every table, in creation order; features add theirs here.
MODELS = [User, ApiToken, Workflow, Execution, ExecutionPayload, Step, StepPayload]
from alerts.models import ALERT_MODELS; MODELS += ALERT_MODELS  # noqa: E402,E702
MODELS.append(RunRollup)

__all__ = ["MODELS", "create_schema", "database", "init_database", "ApiToken", "Execution",
           "ExecutionPayload", "Step", "StepPayload", "User", "Workflow"]
