"""``executor.pack`` in a manifest: a SLURM option (the local executor refuses it, with the
file, line and path), which needs a time limit; a run's identity does not include it."""

from __future__ import annotations

from support.manifests import simple

from hpcx.manifest.loader import load_desired, validate_paths


def _problems(write, executor: str, resources: str = "") -> list[str]:
    body = (
        simple()
        + f"  executor: {executor}\n"
        + (f"  resources: {resources}\n" if resources else "")
    )
    return [str(p) for p in validate_paths([write("e.yaml", body)])]


def test_pack_is_refused_on_the_local_executor(write) -> None:
    (msg,) = _problems(write, "{type: local, pack: 4}", "{time: 5}")
    assert msg.startswith(
        "e.yaml:7:27: $.spec.executor.pack: pack does not apply to executor type 'local'"
    )
    (msg,) = _problems(write, "{pack: 4}", "{time: 5}")  # local is the default
    assert "$.spec.executor.pack: pack does not apply" in msg


def test_pack_needs_a_time_limit(write) -> None:
    (msg,) = _problems(write, "{type: slurm, pack: 4}")
    assert msg.startswith("e.yaml:7:33: ")
    assert "$.spec.executor.pack: pack needs resources.time" in msg
    assert _problems(write, "{type: slurm, pack: 4}", "{time: '00:05:00'}") == []
    assert _problems(write, "{type: slurm, pack: 1}") == []  # one run a job: as ever


def test_pack_must_be_a_positive_integer(write) -> None:
    (msg,) = _problems(write, "{type: slurm, pack: 0}", "{time: 5}")
    assert "$.spec.executor.pack" in msg


def test_pack_is_not_identity(write) -> None:
    plain = load_desired(
        [write("a.yaml", simple() + "  executor: {type: slurm}\n  resources: {time: 5}\n")]
    )
    packed = load_desired(
        [write("b.yaml", simple() + "  executor: {type: slurm, pack: 8}\n  resources: {time: 5}\n")]
    )
    assert plain.runs[0].run_id == packed.runs[0].run_id
    assert packed.runs[0].executor["pack"] == 8


def test_pack_with_checkpoint_is_refused(write) -> None:
    body = (
        simple()
        + "  executor: {type: slurm, pack: 4}\n  resources: {time: 5}\n"
        + "  checkpoint: {before: 60}\n"
    )
    (msg,) = [str(p) for p in validate_paths([write("e.yaml", body)])]
    assert "$.spec.executor.pack: pack and checkpoint do not go together" in msg


def test_pack_time_is_checked_like_pack(write) -> None:
    (msg,) = _problems(write, "{type: local, pack_time: '00:30:00'}", "{time: 5}")
    assert "$.spec.executor.pack_time: pack_time does not apply to executor type 'local'" in msg
    (msg,) = _problems(write, "{type: slurm, pack_time: '00:30:00'}")
    assert "$.spec.executor.pack_time: pack_time needs resources.time" in msg
    (msg,) = _problems(write, "{type: slurm, pack_time: soon}", "{time: 5}")
    assert "$.spec.executor.pack_time: 'soon' is not a time limit" in msg
    assert _problems(write, "{type: slurm, pack_time: 30}", "{time: 5}") == []
