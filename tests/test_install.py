"""What the README's install gives: every module of the app is shipped, and the commands
work from any folder (not only from the checkout, where the modules lie next to each other)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib


from helpers import ROOT

# Folders of the checkout that are not part of the app.
NOT_SHIPPED = {"tests", "benchmarks", "client", "docs", "static", "templates", "instance"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_module_and_package_of_the_app_is_listed_for_install():
    tool = _project()["tool"]["setuptools"]
    modules = {path.stem for path in ROOT.glob("*.py")}
    assert modules <= set(tool["py-modules"]), "not shipped: " + ", ".join(
        sorted(modules - set(tool["py-modules"])))
    patterns = tool["packages"]["find"]["include"]
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - NOT_SHIPPED
    unlisted = {name for name in packages if f"{name}*" not in patterns and name not in patterns}
    assert not unlisted, "not shipped: " + ", ".join(sorted(unlisted))


def _flask(args: list[str], folder) -> subprocess.CompletedProcess:
    """`flask --app app …` run from `folder` with the installed package alone on the path."""
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONPATH" and not key.startswith("RUNWATCH_")}
    env.update(RUNWATCH_DATABASE_URL=f"sqlite:///{folder / 'runwatch.db'}",
               RUNWATCH_SCHEDULER="false", RUNWATCH_SECRET_KEY="install test")
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_commands_work_from_another_folder(tmp_path):
    found = _flask(["--help"], tmp_path)
    assert found.returncode == 0, found.stderr
    for command in ("users", "tokens", "demo", "alerts", "scheduler", "retention"):
        assert f"  {command} " in found.stdout, (command, found.stdout, found.stderr)
    created = _flask(["users", "create", "ops@example.com", "--password", "a long password"],
                     tmp_path)
    assert created.returncode == 0, created.stderr
    listed = _flask(["users", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "ops@example.com" in listed.stdout
