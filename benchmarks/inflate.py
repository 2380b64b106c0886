"""Inflating a gzip body of many members: CPU seconds, and whether it grows in proportion.

    python -m benchmarks.inflate [--sizes 1MB,3MB,10MiB]

Each body is empty gzip members (`gzip.compress(b"", 0)`, 23 bytes each) one after the
other, as many as fill the size. Two cases per size, each timed once in CPU seconds of
this process:

- the request: `POST /v1/traces` of the body with `Content-Encoding: gzip` through the app
  (its status says whether the member cap answered it);
- the walk: `otel.otlp.inflate` itself with the member cap lifted, so that every member is
  inflated; its CPU time per member should not grow with the size of the body.

A last body stays under the cap: 999 empty members, then one member of 9 MiB that does not
compress (under the 10 MiB limit, before and after inflating). Copying what follows each
member would copy the large one 999 times.
"""
from __future__ import annotations

import argparse
import gzip
import os
import time

from otel import otlp

from .harness import Bench, print_table

MEMBER = gzip.compress(b"", 0)
UNITS = {"KB": 1000, "MB": 1000 ** 2, "KIB": 1024, "MIB": 1024 ** 2}


def size(text: str) -> int:
    """Bytes of a size such as `3MB` or `10MiB`."""
    for unit, factor in UNITS.items():
        if text.upper().endswith(unit):
            return int(float(text[:-len(unit)]) * factor)
    return int(text)


def cpu_seconds(fn) -> tuple[float, object]:
    """The CPU time of one call of `fn`, and what it returned."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1MB,3MB,10MiB",
                        help="body sizes, comma-separated (e.g. 1MB,3MB,10MiB)")
    args = parser.parse_args()
    bench = Bench()
    # (name, members, body, whether they are empty members alone)
    bodies = [(text, size(text) // len(MEMBER), MEMBER * (size(text) // len(MEMBER)), True)
              for text in args.sizes.split(",")]
    bodies.append(("999 + 9MiB", 1000, MEMBER * 999 + gzip.compress(os.urandom(9 << 20), 1),
                   False))
    rows, first = [], None
    for text, members, body, empty in bodies:
        request, response = cpu_seconds(lambda: bench.client.post(
            "/v1/traces", data=body, headers={**bench.headers, "Content-Encoding": "gzip",
                                              "Content-Type": "application/x-protobuf"}))
        cap = getattr(otlp, "MAX_MEMBERS", None)
        otlp.MAX_MEMBERS = members  # lifted: every member is inflated
        try:
            walk, _ = cpu_seconds(lambda: otlp.inflate(body, "gzip", 2 * len(body)))
        finally:
            otlp.MAX_MEMBERS = cap
        per_member = walk / members * 1e6
        if empty:  # the cost of each member, which should not grow with the body
            first = first or per_member
            each = [f"{per_member:.2f}", per_member / first]
        else:
            each = ["-", "-"]
        rows.append([text, f"{len(body):,}", f"{members:,}", response.status_code,
                     f"{request:.3f}", f"{walk:.3f}", *each])
    print(f"empty gzip members of {len(MEMBER)} bytes; member cap "
          f"{getattr(otlp, 'MAX_MEMBERS', None) or 'none'}")
    print_table(["size", "bytes", "members", "request status", "request CPU s",
                 "walk CPU s (no cap)", "walk us/member", "us/member vs first"], rows)


if __name__ == "__main__":
    main()
