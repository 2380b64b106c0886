"""Report runs to Runwatch from scripts and Python code, with the standard library alone.

    with runwatch_client.run("nightly-backup", input={"db": "main"}) as run:
        with run.step("dump", action="pg_dump") as step:
            step.output = {"bytes": 123}

The address and token come from `url=`/`token=` or RUNWATCH_URL and RUNWATCH_TOKEN.
"""
__version__ = "0.1.0"

from .api import Run, RunwatchWarning, Step, current, run, step, workflow  # noqa: E402

__all__ = ["Run", "RunwatchWarning", "Step", "current", "run", "step", "workflow",
           "__version__"]
