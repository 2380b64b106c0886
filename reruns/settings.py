"""A workflow's re-run hook: saved from the `rerun` setting (the PATCH of a workflow and its
settings form), read back, and shown with its secrets masked."""
from __future__ import annotations

from models.bulk import placeholders
from models.executions import dump_json
from models.payloads import MASK, mask, mask_url
from models.schemas import InputError
from models.times import utcnow

from .models import RerunHook
from .schemas import RerunIn

MASKED_VALUE = (f"holds {MASK}, the mask of a hidden value; send the whole value (answers "
                "to admin tokens show it)")


def save_hook(workflow_id: int, hook: RerunIn | None) -> None:
    """Set (or, with None, remove) a workflow's hook, in the caller's transaction. A value
    holding the mask (copied from a masked answer) is refused: it would replace the URL or
    a header for good."""
    if hook is None:
        RerunHook.delete().where(RerunHook.workflow == workflow_id).execute()
        return
    for field, value in (("url", hook.url), *((f"headers.{name}", text)
                                              for name, text in hook.headers.items()),
                         ("secret", hook.secret or "")):
        if MASK in value:
            raise InputError(f"rerun.{field}: {MASKED_VALUE}", f"rerun.{field}")
    values = {"url": hook.url, "headers_json": dump_json(hook.headers),
              "body_json": dump_json(hook.body), "secret": hook.secret,
              "updated_at": utcnow()}
    RerunHook.insert(workflow=workflow_id, **values).on_conflict(
        conflict_target=[RerunHook.workflow], update=values).execute()


def hooks_of(workflow_ids: list[int]) -> dict[int, RerunHook]:
    """The hooks of these workflows, by workflow id (those without one left out)."""
    if not workflow_ids:
        return {}
    # Written by hand: peewee's generation of this statement costs more than the query.
    table = RerunHook._meta.table_name
    return {hook.workflow_id: hook for hook in RerunHook.raw(
        f'SELECT * FROM "{table}" WHERE "workflow_id" IN ({placeholders(len(workflow_ids))})',
        *[int(i) for i in workflow_ids])}


def hook_of(workflow_id: int) -> RerunHook | None:
    """One workflow's hook, or None."""
    return RerunHook.get_or_none(RerunHook.workflow == workflow_id)


def hook_json(hook: RerunHook | None, reveal_secrets: bool) -> dict | None:
    """A hook as the API answers it: whole for those who may see secrets; else the URL by
    its scheme and host, header values, the secret and secret-looking body values masked."""
    if hook is None:
        return None
    if reveal_secrets:
        return {"url": hook.url, "headers": hook.headers, "body": hook.body,
                "secret": hook.secret}
    return {"url": mask_url(hook.url), "headers": {name: MASK for name in hook.headers},
            "body": mask(hook.body), "secret": MASK if hook.secret else None}
