"""The write and delete hooks of an app: what features that keep derived data (rollups,
summaries, alert bookkeeping) ask the write path to call inside its transactions.

Each app keeps its own in `app.extensions`, filled by its features' `init_app`: importing a
module registers nothing, and a second app in one process does not inherit the first one's.
A write made outside any app context (a script, a test that stores runs directly) uses the
hooks of the app that last opened the database: the process has one database handle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from flask import Flask, current_app, has_app_context

if TYPE_CHECKING:
    from .run_rows import Change, RunState

KEY = "runwatch.hooks"


@dataclass
class Hooks:
    """One app's hooks, called in the order they were registered."""

    write: list[Callable[[list[Change]], None]] = field(default_factory=list)
    delete: list[Callable[[list[RunState]], None]] = field(default_factory=list)
    # Rules that say whether a report replaces an error Runwatch itself gave the run (a
    # timeout): rule(before, status, fields sent, stored error type as a call) -> bool.
    replaces_error: list[Callable[[RunState, str, set, Callable], bool]] = field(
        default_factory=list)
    # Rules that say which runs start inside a maintenance window, as they are stored:
    # rule([(workflow name, started_at in microseconds), …]) -> [bool, …].
    maintenance: list[Callable[[list[tuple[str, int]]], list[bool]]] = field(
        default_factory=list)


_bound = Hooks()  # the hooks of the app that opened the database last


def init_app(app: Flask) -> Hooks:
    """Give `app` an empty set of hooks and make them the ones used outside its context."""
    global _bound
    _bound = app.extensions[KEY] = Hooks()
    return _bound


def bind(app: Flask) -> None:
    """Make `app`'s hooks the ones used outside its context again (it opens the database
    anew: `models.startup.restart`)."""
    global _bound
    _bound = hooks_of(app)


def hooks_of(app: Flask) -> Hooks:
    """The hooks of `app` (an empty set for an app that has none)."""
    return app.extensions.setdefault(KEY, Hooks())


def current_hooks() -> Hooks:
    """The hooks of the app in context, else of the app that opened the database last."""
    return hooks_of(current_app) if has_app_context() else _bound


def register_write_hook(app: Flask, hook: Callable[[list[Change]], None]) -> None:
    """Call `hook(changes)` inside every transaction of `app` that creates or changes runs."""
    hooks = hooks_of(app).write
    if hook not in hooks:
        hooks.append(hook)


def register_delete_hook(app: Flask, hook: Callable[[list[RunState]], None]) -> None:
    """Call `hook(states)` inside every transaction of `app` that deletes runs (retention)."""
    hooks = hooks_of(app).delete
    if hook not in hooks:
        hooks.append(hook)


def register_error_rule(app: Flask, rule: Callable[[RunState, str, set, Callable], bool]) -> None:
    """Let `rule` decide, in `app`'s writes, whether a report replaces an error that
    Runwatch gave the run (see `Hooks.replaces_error`)."""
    rules = hooks_of(app).replaces_error
    if rule not in rules:
        rules.append(rule)


def register_maintenance_rule(app: Flask,
                              rule: Callable[[list[tuple[str, int]]], list[bool]]) -> None:
    """Let `rule` say, in `app`'s writes, which runs start inside a maintenance window (see
    `Hooks.maintenance`)."""
    rules = hooks_of(app).maintenance
    if rule not in rules:
        rules.append(rule)


def in_maintenance(runs: list[tuple[str, int]]) -> list[bool]:
    """Whether each (workflow name, started_at) starts inside a maintenance window."""
    marks = [False] * len(runs)
    if runs:
        for rule in current_hooks().maintenance:
            marks = [a or b for a, b in zip(marks, rule(runs), strict=True)]
    return marks


def run_write_hooks(changes: list[Change]) -> None:
    """Tell the write hooks about runs created or changed in this transaction."""
    if changes:
        for hook in current_hooks().write:
            hook(changes)


def run_delete_hooks(states: list[RunState]) -> None:
    """Tell the delete hooks about runs deleted in this transaction."""
    if states:
        for hook in current_hooks().delete:
            hook(states)


__all__ = ["Hooks", "init_app", "hooks_of", "current_hooks", "register_write_hook",
           "register_delete_hook", "register_error_rule", "register_maintenance_rule",
           "in_maintenance", "run_write_hooks", "run_delete_hooks"]
