"""A worker's memory: a large request body leaves it as small as it was, and the
collector does not walk what the start made.

Reading a body of several megabytes (parsing its JSON, building its rows) frees all it
allocated by the end of the request, but glibc's allocator keeps the freed pages, so a
worker that once read a 10 MB body would stay tens of megabytes larger for good. After
the answer to such a request is sent, `malloc_trim` hands them back to the system.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

from flask import Flask, Response, request

TRIM_AFTER_BYTES = 1024 * 1024  # bodies smaller than this leave too little to be worth it


def _malloc_trim():
    """glibc's malloc_trim, or None on a C library without one (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def _release() -> None:
    _TRIM(0)


def _after(response: Response) -> Response:
    if (request.content_length or 0) >= TRIM_AFTER_BYTES:
        response.call_on_close(_release)  # once the answer is sent and the request freed
    return response


def init_app(app: Flask) -> None:
    """Trim the allocator after every request with a body of TRIM_AFTER_BYTES or more."""
    if _TRIM is not None:
        app.after_request(_after)


def freeze_startup(app: Flask) -> None:
    """Keep the objects the start made (modules, schemas, the app) out of the cyclic
    garbage collector's sight for the life of the process.

    A request that stores a batch allocates enough objects to set off a full collection
    every few requests, and a full collection walks every object in the process: some
    80,000 after the start, 20 to 60 ms on the machines we measure on, paid by whichever
    request set it off. Frozen (`gc.freeze`), they are no longer walked; what requests
    make is collected as before. Once per process, and not in tests, which build an app
    per test in one process.
    """
    global _frozen
    if not app.testing and not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


_frozen = False  # once per process: a second app (a command, a check) adds little
