"""What the scan and delivery need from the app's configuration, as one plain object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from flask import Flask

from views.links import link_builder

ALLOW_PRIVATE = "webhook_allow_private"
"""The key of the rule validation context that lets a webhook URL name a private address."""
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class AlertConfig:
    """Scan, delivery and mail configuration; `execution_url(id)` links to an execution's page."""

    execution_url: Callable[[int], str]
    scan_seconds: int = 30
    retry_seconds: int = 60
    max_attempts: int = 6
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "runwatch@localhost"
    alerts_url: str = ""
    webhook_allow_private: bool = False  # webhooks may go to loopback, private, link-local, …
    webhook_timeout: float = 10.0  # seconds for a whole webhook attempt, from look-up to answer
    smtp_timeout: float = 30.0     # seconds for a whole e-mail attempt, from connection to QUIT
    delivery_workers: int = 8      # notices sent at once by one delivery pass
    lease_seconds: float = 10.0    # a claim without renewal; renewed every third while sending
    workflow_url: Callable[[str], str] | None = None  # a workflow's page, by name
    pagerduty_events_url: str = PAGERDUTY_EVENTS_URL  # where PagerDuty events are sent


def validation_context(config: AlertConfig) -> dict:
    """What validating a rule's channels needs of the configuration (pydantic's `context`)."""
    return {ALLOW_PRIVATE: config.webhook_allow_private}


def config_from(app: Flask) -> AlertConfig:
    """The alert configuration of `app`; its links lead to RUNWATCH_BASE_URL."""
    config = app.config
    execution_url = link_builder("executions.show", external=True, app=app)
    workflow_url = link_builder("workflows.show", external=True, app=app)

    return AlertConfig(
        execution_url=lambda execution_id: execution_url(execution_id=execution_id),
        workflow_url=lambda name: workflow_url(name=name),
        scan_seconds=config["ALERT_SCAN_SECONDS"],
        retry_seconds=config["DELIVERY_RETRY_SECONDS"],
        max_attempts=config["DELIVERY_MAX_ATTEMPTS"],
        smtp_host=config["SMTP_HOST"] or None,
        smtp_port=config["SMTP_PORT"],
        smtp_username=config["SMTP_USERNAME"] or None,
        smtp_password=config["SMTP_PASSWORD"] or None,
        smtp_starttls=bool(config["SMTP_STARTTLS"]),
        mail_from=config["MAIL_FROM"],
        alerts_url=link_builder("alerts.index", external=True, app=app)(),
        webhook_allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
        pagerduty_events_url=config["PAGERDUTY_EVENTS_URL"],
        webhook_timeout=float(config["WEBHOOK_TIMEOUT_SECONDS"]),
        smtp_timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
        lease_seconds=float(config["DELIVERY_LEASE_SECONDS"]),
    )
