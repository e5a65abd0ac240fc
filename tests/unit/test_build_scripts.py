"""scripts/build-base-image.sh and scripts/build-wheelhouse.sh: shellcheck, and the command line
(usage, refusals) checked before anything is built. The real builds run in the image test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("build-base-image.sh", "build-wheelhouse.sh")


def run(script: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPLIANCE_CACHE": str(cache)}
    return subprocess.run(
        [str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("script", [*SCRIPTS, "lib-cache.sh"])
def test_script_is_shellcheck_clean(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--external-sources", f"scripts/{script}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_sets_strict_mode(script: str) -> None:
    text = (REPO / "scripts" / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -o errexit -o nounset -o pipefail" in text


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_exits_zero(script: str, tmp_path: Path) -> None:
    result = run(script, "--help", cache=tmp_path / "cache")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: {script} OUT_DIR [--release 13|12]")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "OUT_DIR is required"),
        (("{out}", "--release", "11"), "--release must be 13 or 12, not '11'"),
        (("{out}", "--release=sid"), "--release must be 13 or 12, not 'sid'"),
        (("{out}", "--release"), "--release needs a value"),
        (("{out}", "--bogus"), "unknown option: --bogus"),
        (("{out}", "{out}-second"), "unexpected argument: "),
    ],
)
def test_refuses_bad_arguments_before_touching_anything(
    script: str, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(script, *(a.format(out=out) for a in args), cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "usage:" in result.stderr or "--release must be" in message
    assert result.stdout == ""
    assert not out.exists()
    assert not (tmp_path / "cache").exists()
