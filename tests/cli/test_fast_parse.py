"""hpcx.cli._fast parses a command line without typer: it must hand every command exactly what
typer would, and leave to typer every line it is not certain of.

Each command of the registry is parsed both ways over a table of command lines made from its
own declarations (every option string, values of its type, arguments in and out of order). The
typer side is the real typer application built from the same declarations, its commands'
functions swapped for recorders of what typer calls them with.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hpcx.cli import _fast, load_registry
from hpcx.cli._decl import Command, Group
from hpcx.cli._typer import build

HPCX = str(Path(sys.executable).with_name("hpcx"))

#: Values for each leaf type: some the fast path converts, some it declines (typer decides).
SAMPLES = {
    "str": ["abc", "-x", "a b", ""],
    "int": ["3", "-2", "0", "1_000", " 4", "x"],
    "float": ["2.5", "-1", "0", "1e3", "nan", "x"],
    "Path": ["some/file.yaml", "-", "."],
}


def _commands(
    group: Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    for cmd in group.commands:
        yield (*prefix, cmd.name), cmd
    for sub, kw in group.groups:
        yield from _commands(sub, (*prefix, kw["name"]))


REGISTRY = load_registry(None)
COMMANDS = dict(_commands(REGISTRY))


def _leaf(annotation: str) -> str:
    base = annotation.removesuffix(" | None")
    return base[5:-1] if base.startswith("list[") else base


def _lines(path: tuple[str, ...], cmd: Command) -> Iterator[list[str]]:
    """Command lines for one command, from its declarations."""
    specs = _fast._specs(cmd.func)
    assert specs is not None, f"{' '.join(path)}: declared beyond the fast parser"
    options, arguments, _ = specs
    required: list[str] = []
    for arg in arguments:
        if not arg.multiple:
            required.append("arg-" + arg.name)
        elif arg.default is ...:
            required.append(SAMPLES[_leaf(_annotation(cmd, arg.name))][0])
    base = [*path, *required]
    yield base
    for word, spec in options.items():
        if spec.flag:
            yield [*base, word]
            yield [*path, word, *required]  # before the arguments
            yield [*base, word, word]
            continue
        for value in SAMPLES[_leaf(_annotation(cmd, spec.name))]:
            yield [*base, word, value]
            if word.startswith("--"):
                yield [*base, f"{word}={value}"]
        first = SAMPLES[_leaf(_annotation(cmd, spec.name))][0]
        yield [*base, word, first, word, first]  # twice: a list, or the last one wins
        yield [*base, word]  # no value: typer's error
    for arg in arguments:
        if arg.multiple:
            for n in (1, 2, 3):
                values = SAMPLES[_leaf(_annotation(cmd, arg.name))][:1] * n
                yield [*path, *required[:1], *values, *required[1:]]
    yield [*base, "extra", "words"]
    yield [*base, "--no-such-option"]
    yield [*base, "--help"]
    yield [*base, "--"]


def _annotation(cmd: Command, name: str) -> str:
    return cmd.func.__annotations__[name]


def _recording(group: Group, sink: list[dict[str, Any]]) -> Group:
    """A copy of ``group`` whose commands record what they are called with."""

    def recorder(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def record(**kwargs: Any) -> None:
            sink.append(kwargs)

        return record

    out = Group(**group.kw)
    for cmd in group.commands:
        out.command(cmd.name, **cmd.kw)(recorder(cmd.func))
    for sub, kw in group.groups:
        out.groups.append((_recording(sub, sink), kw))
    return out


@pytest.fixture(scope="module")
def typer_side() -> tuple[Any, list[dict[str, Any]]]:
    sink: list[dict[str, Any]] = []
    return build(_recording(REGISTRY, sink)), sink


def _typer_parse(typer_side: tuple[Any, list[dict[str, Any]]], argv: list[str]) -> Any:
    app, sink = typer_side
    sink.clear()
    result = CliRunner().invoke(app, argv)
    if result.exit_code != 0 or not sink:
        return ("refused", result.exit_code)
    (kwargs,) = sink
    return kwargs


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_command_line_parses_as_typer_parses_it(
    path: tuple[str, ...], typer_side: tuple[Any, list[dict[str, Any]]]
) -> None:
    cmd = COMMANDS[path]
    if cmd.kw.get("context_settings"):
        # click's context settings (exec passes unknown options through): typer's alone
        assert all(_fast.parse(REGISTRY, argv) is None for argv in _lines(path, cmd))
        return
    fast_count = 0
    for argv in _lines(path, cmd):
        fast = _fast.parse(REGISTRY, argv)
        slow = _typer_parse(typer_side, argv)
        if fast is None:
            continue  # typer parses it, as before
        func, kwargs = fast
        assert func is cmd.func
        assert slow == kwargs, f"hpcx {' '.join(argv)}"
        # the same values of the same types (Path, not str; [] not ())
        assert {k: type(v) for k, v in kwargs.items()} == {k: type(v) for k, v in slow.items()}
        fast_count += 1
    # the plain lines (the command alone, each option with a plain value) took the fast path
    assert fast_count >= 1 + sum(1 for _ in _fast._specs(cmd.func)[0])


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--help"],
        ["status", "--jsn"],
        ["status", "-h"],
        ["status", "--json=yes"],
        ["status", "--", "x"],
        ["status", "extra"],
        ["query"],  # its SQL is required
        ["runs"],
        ["nosuchcommand"],
        [],
        ["cancel", "--wait", "-1"],  # below its min=0: typer words the error
        ["cancel", "--wait", "1e3"],  # pydantic's float, not float(): typer decides
    ],
)
def test_what_it_is_not_sure_of_it_leaves_to_typer(argv: list[str]) -> None:
    assert _fast.parse(REGISTRY, argv) is None


def test_a_bad_line_still_gets_typers_message_and_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([HPCX, "status", "--jsn"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such option: --jsn" in proc.stderr
    assert "Possible options: --json" in proc.stderr


def test_a_fast_command_imports_no_typer(tmp_path: Path) -> None:
    """The point of it all: ``hpcx status`` runs without typer (nor click) imported."""
    code = (
        "import sys\n"
        "sys.argv = ['hpcx', 'status', '--state', sys.argv[1]]\n"
        "from hpcx.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "none.duckdb")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "no state at" in proc.stderr  # the command itself ran, and said why it stopped
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _raises(exc: BaseException) -> Callable[..., None]:
    def command() -> None:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "code", "err"),
    [
        (KeyboardInterrupt(), 130, ""),
        (EOFError(), 1, "\nAborted!\n"),
        (BrokenPipeError(32, "Broken pipe"), 1, ""),
    ],
    ids=["ctrl-c", "eof", "closed stdout"],
)
def test_a_command_ends_as_under_typers_standalone_mode(
    exc: BaseException, code: int, err: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        _fast.run(_raises(exc), {})
    assert ended.value.code == code
    assert capsys.readouterr().err == err


def test_a_prompt_aborted_ends_as_typer_ends_it(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    with pytest.raises(SystemExit) as ended:
        _fast.run(_raises(typer.Abort()), {})
    assert ended.value.code == 1
    assert capsys.readouterr().err == "Aborted!\n"
    # an hpcx error is not typer's: it reaches hpcx.cli.main, which prints it
    from hpcx.errors import StateError

    with pytest.raises(StateError):
        _fast.run(_raises(StateError("x")), {})


def test_echo_writes_as_click_echo_does(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from hpcx.cli._decl import echo

    # a closed stream (2>&-): nothing, no error
    monkeypatch.setattr(sys, "stderr", None)
    echo("lost", err=True)
    # not a terminal: ANSI escapes removed; a character the encoding lacks replaced
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    echo("\x1b[31mred\x1b[0m caf\u00e9 \u21bb")
    assert raw.getvalue() == b"red caf? ?\n"


def test_keyword_only_parameters_are_read_from_their_own_defaults() -> None:
    from hpcx.cli._decl import Option

    def command(
        a: str = Option("x", "--a"), *, b: int = Option(2, "--b"), c: bool = Option(False, "--c")
    ) -> None:
        pass

    group = Group(name="t")
    group.command("cmd")(command)
    assert _fast.parse(group, ["cmd", "--b", "5", "--c"]) == (
        command,
        {"a": "x", "b": 5, "c": True},
    )
