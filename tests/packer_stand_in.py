"""A stand-in for the packer executable, for the bake tests: it records its arguments in
calls.jsonl beside itself and prints output.txt (what Packer 1.6.6 prints for a build), then
exits with the code in exit-code. The real Packer cannot build an AMI from here."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

SCRIPT = """\
#!{python}
# A stand-in for packer: records its arguments, then answers like Packer 1.6.6.
import json, pathlib, sys
here = pathlib.Path(__file__).parent
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["version"]:
    print("Packer v1.6.6")
    sys.exit(0)
sys.stdout.write((here / "output.txt").read_text())
sys.exit(int((here / "exit-code").read_text()))
"""


def will_print(exe: Path, output: str, exit_code: int = 0) -> None:
    (exe.parent / "output.txt").write_text(output)
    (exe.parent / "exit-code").write_text(str(exit_code))


def stand_in_packer(directory: Path, output: str = "", exit_code: int = 0) -> Path:
    """Writes ``directory/packer`` and what it will print; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "packer"
    exe.write_text(SCRIPT.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    will_print(exe, output, exit_code)
    return exe


def calls(exe: Path) -> list[list[str]]:
    """Every command line the stand-in was run with, oldest first."""
    log = exe.parent / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
