"""The benchmark suite (bench/bench.py) runs: its smoke mode passes on W1-W7, a short
timing pass produces ratios, a table and JSON, memory is measured, and the README's
marked section is rewritten in place. (The smoke run checks every hand gradient.)"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tracker

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench.py"
WORKLOADS = [f"W{i}" for i in range(1, 8)]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # the workers import the tracker this test imported, wherever it was found
    env = dict(os.environ)
    package_root = str(Path(tracker.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_smoke_checks_every_workload(tmp_path):
    out = tmp_path / "smoke.json"
    done = run_bench("--smoke", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    seen = {(r["workload"], r["framework"]): r["status"] for r in results}
    # the smoke mode runs NumPy and tracker only, unless peers are named
    assert seen == {(w, f): "ok" for w in WORKLOADS for f in ("numpy", "numpy-grad", "tracker")}
    assert all("match NumPy" in r["check"] or "hand gradient" in r["check"] for r in results)


def test_a_short_timing_run_reports_ratios_memory_and_the_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# project\n\nText.\n\n## License\n\nMIT.\n")
    out = tmp_path / "run.json"
    done = run_bench(
        *("--workloads", "W1,W2", "--frameworks", "numpy,tracker"),
        *("--threads", "default,1", "--rounds", "1", "--batches", "2"),
        *("--batch-time", "0.01", "--warmup-time", "0", "--json", str(out)),
        *("--readme", str(readme)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Gradient time / NumPy forward time" in done.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["threads"] == ["default", "1"]
    results = data["results"]
    assert len(results) == 2 * 2 * 2
    for r in results:
        assert r["status"] == "ok"
        assert r["median_s"] > 0 and r["min_s"] <= r["median_s"]
        assert r["ratio_median"] > 0
        if r["workload"] == "W2":
            assert r["us_per_op_median"] > 0
        assert "memory_mb" not in r  # W4 and W7 only (measured below, in-process)
    floors = [r for r in results if r["framework"] == "numpy"]
    assert all(r["ratio_median"] == 1.0 for r in floors)
    text = readme.read_text()
    assert text.count("<!-- bench: start -->") == text.count("<!-- bench: end -->") == 1
    assert text.index("## Performance") < text.index("<!-- bench: start -->")
    assert text.index("<!-- bench: end -->") < text.index("## License")
    assert "**Default threads**" in text and "**Threads: 1**" in text
    assert "| tracker |" in text and "W2 (µs/op)" in text


def test_the_readme_section_is_replaced_not_added_again(tmp_path):
    bench = load_bench()
    readme = tmp_path / "README.md"
    readme.write_text("# p\n\n## Performance\n\n<!-- bench: start -->\nold\n<!-- bench: end -->\n")
    section = "<!-- bench: start -->\nnew\n<!-- bench: end -->"
    bench.rewrite_readme(str(readme), section)
    bench.rewrite_readme(str(readme), section)
    assert readme.read_text() == f"# p\n\n## Performance\n\n{section}\n"
    readme.write_text("<!-- bench: start -->\nno end\n")
    with pytest.raises(SystemExit):
        bench.rewrite_readme(str(readme), section)


def test_memory_is_the_peak_during_the_calls_minus_before():
    bench = load_bench()
    size = 64 * 2**20

    def allocate():
        block = np.ones(size // 8)  # touched, so resident
        return float(block[-1])

    mb, method = bench.measure_memory(allocate)
    assert method in ("reset", "fresh", "bound")
    if method != "bound":
        assert 60 <= mb <= 100


def test_threads_parse_and_set_the_environment():
    bench = load_bench()
    assert bench.parse_threads(None) == [None]
    assert bench.parse_threads("default,1,1") == [None, 1]
    with pytest.raises(SystemExit):
        bench.parse_threads("0")
    env = bench.worker_env(1)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        assert env[name] == "1"
    assert env["TRACKER_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
