"""Adding, changing, pausing and deleting sources, and showing them (the token masked for
those who may not see secrets)."""
from __future__ import annotations

from models.db import write_transaction
from models.payloads import MASK
from models.schemas import InputError
from models.times import iso, utcnow

from .models import Source
from .pull import FIRST_LOOK_BACK
from .schemas import DEFAULT_LIMIT, SourceIn, SourcePatch

MASKED_TOKEN = (f"holds {MASK}, the mask of a hidden value; send the whole token (answers "
                "to admin tokens show it), or leave `token` out to keep it")


def _check_token(token: str | None) -> None:
    if token and MASK in token:
        raise InputError(f"token: {MASKED_TOKEN}", "token")


def create_source(new: SourceIn) -> Source:
    """Add a source; its first pull is due at once and brings the runs of the day before."""
    _check_token(new.token)
    now = utcnow()
    with write_transaction():
        return Source.create(type=new.type, url=new.url, token=new.token,
                             interval_seconds=new.interval_seconds, enabled=new.enabled,
                             created_at=now, updated_at=now, next_pull_at=now,
                             cursor=now - FIRST_LOOK_BACK)


def update_source(source_id: int, patch: SourcePatch) -> Source | None:
    """Change what was sent; None when there is no such source. A new URL is another
    engine: its cursor starts again, a day back. Resuming makes a pull due at once."""
    sent = patch.model_fields_set
    if "token" in sent:
        _check_token(patch.token)
    with write_transaction():
        source = Source.get_or_none(Source.id == source_id)
        if source is None:
            return None
        now = utcnow()
        if "url" in sent and patch.url != source.url:
            source.url, source.cursor, source.next_pull_at = (patch.url, now - FIRST_LOOK_BACK,
                                                              now)
        if "token" in sent:
            source.token = patch.token
        if "interval_seconds" in sent:
            source.interval_seconds = patch.interval_seconds
        if "enabled" in sent and patch.enabled != source.enabled:
            source.enabled = patch.enabled
            if patch.enabled:
                source.next_pull_at = now
        source.updated_at = now
        source.save()
    return source


def set_enabled(source_id: int, enabled: bool) -> Source | None:
    """Pause or resume a source (the page's buttons)."""
    return update_source(source_id, SourcePatch.model_validate({"enabled": enabled}))


def pull_soon(source_id: int) -> bool:
    """Make the source's pull due now (the scheduler's next pass takes it); False when
    there is no such source."""
    with write_transaction():
        return bool(Source.update(next_pull_at=utcnow()).where(Source.id == source_id)
                    .execute())


def delete_source(source_id: int) -> bool:
    """Delete a source; the runs it brought stay. False when there is no such source."""
    with write_transaction():
        return bool(Source.delete().where(Source.id == source_id).execute())


def list_sources(after: int | None = None, limit: int = DEFAULT_LIMIT
                 ) -> tuple[list[Source], int | None]:
    """Sources oldest first, after the one with id `after` (keyset paging by id), and the
    cursor of the next page (None: this is the last)."""
    query = Source.select().order_by(Source.id).limit(limit + 1)
    if after is not None:
        query = query.where(Source.id > after)
    found = list(query)
    return found[:limit], (found[limit - 1].id if len(found) > limit else None)


def source_json(source: Source, reveal_secrets: bool) -> dict:
    """A source as the API answers it: the token whole only for those who see secrets."""
    token = source.token if reveal_secrets or source.token is None else MASK
    return {"id": source.id, "type": source.type, "url": source.url, "token": token,
            "interval_seconds": source.interval_seconds, "enabled": source.enabled,
            "created_at": iso(source.created_at), "updated_at": iso(source.updated_at),
            "cursor": iso(source.cursor),
            "next_pull_at": iso(source.next_pull_at) if source.enabled else None,
            "last_pull_at": iso(source.last_pull_at), "last_pulled": source.last_pulled,
            "last_error": source.last_error, "runs": source.runs}
