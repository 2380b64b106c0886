"""Links, built one way: the app's URL map, bound once, builds every address (pages, the
API's `url` fields, the links in notices); no address is cut or glued by hand.

In a request, links lead to the host the request came to. Notices are read away from the
site (an e-mail, a chat message), built by the scan outside any request: their links lead
to RUNWATCH_BASE_URL.
"""
from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.routing import MapAdapter


_MARK = 7_390_156_248_103_592_881  # an id no row has, replaced in a built link


def _base_url_adapter(app: Flask) -> MapAdapter:
    base = urlsplit(app.config["BASE_URL"])
    return app.url_map.bind(base.netloc, script_name=base.path.rstrip("/") or "/",
                            url_scheme=base.scheme or "http")


def link_builder(endpoint: str, *, external: bool = False,
                 app: Flask | None = None) -> Callable[..., str]:
    """Links to one endpoint for many rows (the URL map is bound once, not once per row):
    to this request's host, or with `app` to its RUNWATCH_BASE_URL (links in notices)."""
    if app is None:
        adapter = current_app.create_url_adapter(request)
    else:
        adapter = _base_url_adapter(app)
    templates: dict[str, tuple] = {}  # (before, after) the id, or () to build each time

    def build(**values) -> str:
        if len(values) == 1:
            (key, value), = values.items()
            if type(value) is int:  # a row's id: the link is built once, the number put in
                around = templates.get(key)
                if around is None:
                    link = adapter.build(endpoint, {key: _MARK}, force_external=external)
                    before, found, after = link.partition(str(_MARK))
                    # A converter that writes numbers its own way: built each time.
                    around = templates[key] = (before, after) if found else ()
                if around:
                    return f"{around[0]}{value}{around[1]}"
        return adapter.build(endpoint, values, force_external=external)

    return build


def absolute_url(endpoint: str, **values) -> str:
    """The absolute address of one endpoint, on the host this request came to."""
    return link_builder(endpoint, external=True)(**values)


def register(app: Flask) -> None:
    """Let the templates build absolute addresses the same way."""
    app.add_template_global(absolute_url)


__all__ = ["link_builder", "absolute_url", "register"]
