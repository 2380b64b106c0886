"""Links, built one way: the app's URL map, bound once, builds every address (pages, the
API's `url` fields, the links in notices); no address is cut or glued by hand.

In a request, links lead to the host the request came to. Notices are read away from the
site (an e-mail, a chat message), built by the scan outside any request: their links lead
to RUNWATCH_BASE_URL.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.routing import MapAdapter


_MARK = 7_390_156_248_103_592_881  # an id no row has, replaced in a built link
BUILT_LINKS = 20_000  # links by name kept in this process (a bound on memory)
_BUILT: dict[tuple, str] = {}


def _base_url_adapter(app: Flask) -> MapAdapter:
    base = urlsplit(app.config["BASE_URL"])
    return app.url_map.bind(base.netloc, script_name=base.path.rstrip("/") or "/",
                            url_scheme=base.scheme or "http")


class LinkBuilder:
    """Links to one endpoint for many rows (the URL map is bound once, not once per row):
    call it with the endpoint's values; `template(key)` gives the text around a row's id
    for links that differ by that id alone."""

    def __init__(self, adapter: MapAdapter, endpoint: str, external: bool):
        self.adapter, self.endpoint, self.external = adapter, endpoint, external
        self._around: dict[str, tuple] = {}
        self._where = (adapter.map, adapter.url_scheme, adapter.server_name,
                       adapter.script_name, adapter.subdomain, endpoint, external)

    def __call__(self, **values) -> str:
        if len(values) == 1:
            (key, value), = values.items()
            if type(value) is int:
                around = self.template(key)
                if around:
                    return f"{around[0]}{value}{around[1]}"
            elif type(value) is str:  # a name: built once per host and kept
                cached = (self._where, key, value)
                link = _BUILT.get(cached)
                if link is None:
                    if len(_BUILT) >= BUILT_LINKS:
                        _BUILT.clear()
                    link = _BUILT[cached] = self.adapter.build(
                        self.endpoint, values, force_external=self.external)
                return link
        return self.adapter.build(self.endpoint, values, force_external=self.external)

    def template(self, key: str) -> tuple:
        """The link to a row by id is built once and the number put in: (before, after) the
        id, or () for a converter that writes numbers its own way (built each time)."""
        around = self._around.get(key)
        if around is None:
            link = self.adapter.build(self.endpoint, {key: _MARK}, force_external=self.external)
            before, found, after = link.partition(str(_MARK))
            around = self._around[key] = (before, after) if found else ()
        return around


def link_builder(endpoint: str, *, external: bool = False,
                 app: Flask | None = None) -> LinkBuilder:
    """Links to one endpoint: to this request's host, or with `app` to its
    RUNWATCH_BASE_URL (links in notices)."""
    if app is None:
        adapter = current_app.create_url_adapter(request)
    else:
        adapter = _base_url_adapter(app)
    return LinkBuilder(adapter, endpoint, external)


def absolute_url(endpoint: str, **values) -> str:
    """The absolute address of one endpoint, on the host this request came to."""
    return link_builder(endpoint, external=True)(**values)


def register(app: Flask) -> None:
    """Let the templates build absolute addresses the same way."""
    app.add_template_global(absolute_url)


__all__ = ["LinkBuilder", "link_builder", "absolute_url", "register"]
