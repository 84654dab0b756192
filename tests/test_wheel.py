"""The wheel a user installs: `maturin build --release` gives one cp310-abi3 manylinux
wheel, which installs into a fresh virtual environment and runs the README's example
with no Rust toolchain on the PATH. Slow (a release build and a NumPy download): run
with `make test-slow`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_wheel_installs_and_runs_without_rust(tmp_path: Path) -> None:
    maturin = shutil.which("maturin")
    if maturin is None or not (ROOT / "Cargo.toml").is_file():
        pytest.skip("needs maturin and the sources")
    out = tmp_path / "wheels"
    subprocess.run([maturin, "build", "--release", "-o", str(out)], cwd=ROOT, check=True)
    (wheel,) = out.glob("*.whl")
    assert "-cp310-abi3-manylinux" in wheel.name

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)

    # Only the virtual environment and the system's own tools: no cargo, no rustc.
    path = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    env = {"PATH": path, "HOME": str(tmp_path)}
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    done = subprocess.run(
        [str(python), str(ROOT / "examples" / "readme.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "grad(x) = array([2., 7., 8.])" in done.stdout
