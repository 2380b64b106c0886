"""The API's JSON, written by orjson: the same documents as the standard library's encoder
writes through Flask (keys sorted, Flask's handling of dates and other types), several
times faster, which a page of 100 workflows with their last runs and links shows.

What orjson does not write (an integer past 64 bits, keys that are not text) goes to the
standard library's encoder, as before."""
from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson writing `jsonify`'s and `json.dumps`' text."""

    def _fast(self, obj: Any) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one
            return None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs:
            data = self._fast(obj)
            if data is not None:
                return data.decode()
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        if self._app.debug:  # indented, as Flask does in debug mode
            return super().response(obj)
        data = self._fast(obj)
        if data is None:
            return super().response(obj)
        return self._app.response_class(data + b"\n", mimetype=self.mimetype)


def init_app(app) -> None:
    app.json = FastJSONProvider(app)
