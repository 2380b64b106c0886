"""Failure alerts: rules, the scan that decides notices, the outbox and its delivery."""
import models  # noqa: F401  (the model package lists the alert tables; load it first)
