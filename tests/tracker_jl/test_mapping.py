"""MAPPING.md and the port of Tracker.jl's tests cannot drift apart.

Every row marked applicable must name a test that exists in test_tracker_jl.py or
test_tracker_jl_nnlib.py, and every test there must be named by a row. The rows
follow Julia's order, one per case, numbered without gaps.
"""

import importlib
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TEST_FILES = ("test_tracker_jl.py", "test_tracker_jl_nnlib.py")
JULIA_FILES = ("tracker.jl", "chainrules.jl", "runtests.jl")  # the order they run in
CELL = re.compile(r"(?<!\\)\|")
CODE = re.compile(r"^`([^`]+)`$")
CASE = re.compile(r"^(?P<file>\w+\.jl):(?P<line>\d+)(?: \[(?P<variant>[^\]]+)\])?$")


def mapping_rows():
    rows = []
    for text in (HERE / "MAPPING.md").read_text().splitlines():
        if text.startswith("| ") and not text.startswith("| # "):
            cells = [c.strip() for c in CELL.split(text)[1:-1]]
            assert len(cells) == 6, f"MAPPING.md: a row needs 6 cells: {text}"
            number, case, julia, numpy, applies, last = cells
            rows.append(
                {"number": number, "case": case, "julia": julia, "numpy": numpy}
                | {"applies": applies, "last": last}
            )
    return rows


def load(filename):
    """The test module, imported as pytest imports it.

    test_tracker_jl_nnlib.py skips itself while tracker.nn.functional does not
    exist; to read its test names, it is then loaded once more against an empty
    stand-in for that module (its tests only call it when they run).
    """
    package = __package__ or "tracker_jl"
    try:
        return importlib.import_module(f"{package}.{filename[:-3]}")
    except pytest.skip.Exception:
        pass
    saved = sys.modules.get("tracker.nn.functional")
    sys.modules["tracker.nn.functional"] = types.ModuleType("tracker.nn.functional")
    try:
        spec = importlib.util.spec_from_file_location(
            f"{package}._names_of_{filename[:-3]}", HERE / filename
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["tracker.nn.functional"]
        else:
            sys.modules["tracker.nn.functional"] = saved
    return module


def node_ids(filename):
    """The node ids pytest gives the tests of one file, as `file::Class::test[id]`."""
    module = load(filename)
    ids = set()

    def add(prefix, function):
        marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            ids.add(prefix)
            return
        assert len(marks) == 1, f"{prefix}: one parametrize per test, so its ids are the cases"
        for value in marks[0].args[1]:
            assert getattr(value, "id", None), f"{prefix}: every case needs an id (pytest.param)"
            ids.add(f"{prefix}[{value.id}]")

    for name, item in vars(module).items():
        if name.startswith("test_") and callable(item) and item.__module__ == module.__name__:
            add(f"{filename}::{name}", item)
        elif name.startswith("Test") and isinstance(item, type):
            for method, function in vars(item).items():
                if method.startswith("test_"):
                    add(f"{filename}::{name}::{method}", function)
    return ids


@pytest.fixture(scope="module")
def rows():
    return mapping_rows()


@pytest.fixture(scope="module")
def tests():
    return set().union(*(node_ids(f) for f in TEST_FILES))


def test_every_applicable_case_names_a_test_that_exists(rows, tests):
    for row in rows:
        if row["applies"] == "yes":
            match = CODE.match(row["last"])
            assert match, f"row {row['number']} ({row['case']}): name its test as `file::test`"
            assert match[1] in tests, (
                f"row {row['number']} ({row['case']}) names {match[1]}, which does not exist"
            )


def test_every_test_is_a_case(rows, tests):
    named = {CODE.match(r["last"])[1] for r in rows if r["applies"] == "yes"}
    assert tests - named == set(), "tests that MAPPING.md does not list"


def test_not_applicable_cases_say_why(rows):
    for row in rows:
        assert row["applies"] in ("yes", "no"), f"row {row['number']}: applies is yes or no"
        if row["applies"] == "no":
            assert row["numpy"] == "—", f"row {row['number']}: no NumPy expression"
            assert len(row["last"]) > 20, f"row {row['number']} ({row['case']}): say why"


def test_rows_follow_julia_order(rows):
    assert [r["number"] for r in rows] == [str(k) for k in range(1, len(rows) + 1)]
    cases = [r["case"] for r in rows]
    assert len(set(cases)) == len(cases), "a Julia case appears twice"
    order = []
    for case in cases:
        match = CASE.match(case)
        assert match, f"{case}: write a case as file.jl:line [variant]"
        order.append((JULIA_FILES.index(match["file"]), int(match["line"])))
    # Rows run in Julia's order: by file, and by line within a file except where a
    # loop runs a block of lines once per value (the variant repeats the block).
    files = [f for f, _ in order]
    assert files == sorted(files)
    for (file, line), (next_file, next_line), case in zip(order, order[1:], cases[1:]):
        if file == next_file and next_line < line:
            assert CASE.match(case)["variant"], f"{case} is out of order"


def test_counts_are_stated(rows):
    text = (HERE / "MAPPING.md").read_text()
    applicable = sum(r["applies"] == "yes" for r in rows)
    stated = f"{len(rows)} cases: {applicable} applicable, {len(rows) - applicable} not applicable."
    assert stated in text
