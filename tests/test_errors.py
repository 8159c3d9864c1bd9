"""One home for exceptions: every exception class in ``hpcx`` is defined in ``hpcx/errors.py``
and is an ``HpcxError``, so the CLI reports each as one message (exit 1) and a caller can catch
them all with one ``except``. The few that are not are listed here, each with its reason."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpcx
from hpcx import errors
from hpcx.errors import HpcxError

ROOT = Path(hpcx.__file__).parent

#: Exception classes defined outside hpcx/errors.py on purpose, with the reason.
NOT_HPCX_ERRORS = {
    "hpcx.metrics.UnreadableFile": "an OSError: readers of run files catch every failed read "
    "with `except OSError`",
    "hpcx.util.yamlload._Abort": "private control flow: the YAML loader raises and catches it",
    "hpcx.node.placement.BindingWarning": "a warning category, never raised",
    "hpcx.cli._decl.Exit": "a SystemExit carrying a command's exit code (typer.Exit's role), "
    "not an error",
}

#: Classes whose packages' owners move them into hpcx/errors.py in their own change. Once one
#: has moved, this test fails until it is taken off the list.
PENDING: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def exception_classes() -> Iterator[tuple[str, type[BaseException]]]:
    """(module.Class, class) for every exception class a module of hpcx defines."""
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        names = [
            node.name
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.ClassDef)
        ]
        if not names:
            continue
        loaded = importlib.import_module(module)
        for name in names:
            cls = getattr(loaded, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                yield f"{module}.{name}", cls


FOUND = dict(exception_classes())


def test_the_walk_finds_exceptions_everywhere() -> None:
    # Guards the test itself: an import or AST change that found nothing would pass vacuously.
    assert "hpcx.errors.HpcxError" in FOUND and "hpcx.metrics.UnreadableFile" in FOUND
    assert len(FOUND) > 30


@pytest.mark.parametrize("name", sorted(FOUND))
def test_every_exception_is_an_hpcx_error_defined_in_errors(name: str) -> None:
    if name in NOT_HPCX_ERRORS or name in PENDING:
        return
    cls = FOUND[name]
    assert name.startswith("hpcx.errors."), f"{name}: define it in hpcx/errors.py"
    assert issubclass(cls, HpcxError), f"{name}: derive it from HpcxError"


def test_the_listed_exceptions_still_exist() -> None:
    gone = sorted(set(NOT_HPCX_ERRORS) - set(FOUND))
    assert not gone, f"no longer defined there: take them off NOT_HPCX_ERRORS: {gone}"
    moved = sorted(p for p in PENDING if p not in FOUND)
    assert not moved, f"moved into hpcx/errors.py: take them off PENDING: {moved}"


#: Where callers knew each moved class before; each path still gives the same class.
OLD_HOMES = [
    ("hpcx.run.job", "PlacementFailed"),
    ("hpcx.run.apply", "RunsRootOwnedError"),
    ("hpcx.run.executors", "SubmitError"),
    ("hpcx.run.executors", "SchedulerError"),
    ("hpcx.run.executors.base", "SubmitError"),
    ("hpcx.run.executors.base", "SchedulerError"),
    ("hpcx.run.executors.slots", "SlotsError"),
    ("hpcx.results.query", "QueryError"),
    ("hpcx.cluster.profiles", "ClusterProfileError"),
    ("hpcx.cluster.profiles", "ResourceFitError"),
    ("hpcx.node.placement", "CommandNotFound"),
    ("hpcx.node.probe", "ProfileError"),
]


@pytest.mark.parametrize(("module", "name"), OLD_HOMES)
def test_moved_exceptions_keep_their_old_import_path(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_a_placement_failure_is_an_hpcx_error_with_its_message() -> None:
    # The job wrapper turns it into the run's failure reason (tests/executors/
    # test_job_wrapper.py); anything catching HpcxError catches it too.
    exc = errors.PlacementFailed("NUMA node 63 does not exist")
    assert isinstance(exc, HpcxError) and str(exc) == "NUMA node 63 does not exist"


def test_a_submit_error_carries_what_went_out() -> None:
    exc = errors.SubmitError("sbatch failed", ambiguous=True, hint="reconcile first")
    assert exc.partial is None and exc.ambiguous and exc.hint == "reconcile first"
    assert isinstance(exc, errors.ExecutorError)


def test_a_long_list_in_a_message_shows_its_first_few_and_says_there_are_more() -> None:
    from hpcx.errors import MissingRunFolders, first_few

    assert first_few([]) == ""
    assert first_few(["a", "b", "c", "d", "e"]) == "a, b, c, d, e"
    assert first_few([str(i) for i in range(7)]) == "0, 1, 2, 3, 4 ..."
    assert first_few(["x", "y", "z"], limit=2) == "x, y ..."
    err = MissingRunFolders([f"/runs/e/r{i}" for i in range(6)])
    assert "6 run folder(s)" in str(err) and "/runs/e/r4 ..." in str(err)
    assert "/runs/e/r5" not in str(err) and len(err.paths) == 6
