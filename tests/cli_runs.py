"""Running the `rlx` command in-process from a test, and reading what a run wrote."""

import json
from pathlib import Path

from rlx.cli import main


def rlx(capsys, *args):
    """`rlx ARGS` in this process: (exit code, stdout, stderr)."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def metrics(path: Path) -> list[dict]:
    """The rows of a run directory's metrics.jsonl."""
    return [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines()]
