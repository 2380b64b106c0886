"""Runwatch's core data: the database handle, workflows, executions, steps and accounts.

Features (history, alerts) keep tables of their own and list them in their `MODELS`.
"""
from .db import database, init_database
from .migrations import create_schema
from .executions import Execution, ExecutionPayload, Step, StepPayload, Workflow
from .users import ApiToken, User

# The core tables, in creation order.
MODELS = [User, ApiToken, Workflow, Execution, ExecutionPayload, Step, StepPayload]

__all__ = ["MODELS", "create_schema", "database", "init_database", "ApiToken", "Execution",
           "ExecutionPayload", "Step", "StepPayload", "User", "Workflow"]
