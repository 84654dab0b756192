"""Every example in examples/ runs to completion (each checks its own results)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py")) if EXAMPLES.is_dir() else []


def run(script: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    if script.stem == "train_digits":
        pytest.importorskip("sklearn")
        pytest.importorskip("matplotlib")
    out = run(script, cwd=tmp_path)
    if script.stem == "train_digits":
        accuracy = re.search(r"^test accuracy: (0\.\d{3})$", out, re.MULTILINE)
        assert accuracy is not None, out[-500:]
        assert float(accuracy.group(1)) >= 0.95
        assert (tmp_path / "digits_loss.png").stat().st_size > 1000


def test_every_example_is_found() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip("the examples are not beside the tests")
    assert {p.stem for p in SCRIPTS} >= {"readme", "flux_chain", "rosenbrock", "newton"}
