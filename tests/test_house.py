"""The house rules a newcomer can rely on: no module of the product grows past 400 lines."""
from __future__ import annotations

import subprocess

from helpers import ROOT

LONGEST = 400


def test_no_module_outside_the_tests_is_over_400_lines():
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True,
                             text=True, timeout=30)
    if tracked.returncode != 0:  # an unpacked copy without its history: read the folders
        files = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
                 if not any(part.startswith(".") or part == "node_modules" for part in p.parts)]
    else:
        files = tracked.stdout.split()
    modules = [name for name in files if not name.startswith("tests/")]
    assert modules
    long = {name: n for name in modules
            if (n := len((ROOT / name).read_text().splitlines())) > LONGEST}
    assert not long, f"split these by what each part does: {long}"
