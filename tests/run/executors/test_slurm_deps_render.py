"""Dependencies in sbatch text: which runs share an array (equal dependency sets; the pipeline
``eval[i] needs train[i]`` as one array with ``aftercorr``), the options (golden), and the
refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.specs import make_spec

from hpcx.run.executors import InvalidOptionError, Upstream
from hpcx.run.executors.slurm import (
    Limits,
    SlurmExecutor,
    array_spec,
    dependency_options,
    dependency_sets,
    render_sbatch,
    resource_options,
)

GOLDEN = Path(__file__).parent / "golden"
KEY = "20250101T000000-abcd1234"


def test_runs_without_needs_share_one_group_without_a_dependency() -> None:
    assert dependency_sets([("a", []), ("b", [])], 1000) == [(None, ["a", "b"])]


def test_equal_dependency_sets_share_an_array_with_afterok_in_job_order() -> None:
    runs = [
        ("a", ["12", "9_1"]),
        ("b", ["7"]),
        ("c", ["9_1", "12", "12"]),
        ("d", []),
    ]
    assert dependency_sets(runs, 1000) == [
        ("afterok:9_1:12", ["a", "c"]),
        ("afterok:7", ["b"]),
        (None, ["d"]),
    ]


def test_eval_i_needing_train_i_is_one_array_after_the_corresponding_tasks() -> None:
    # Given out of order: the array is ordered by the task each run needs.
    runs = [("e2", ["40_2"]), ("e0", ["40_0"]), ("e1", ["40_1"]), ("x", ["41_0"])]
    assert dependency_sets(runs, 1000) == [
        ("aftercorr:40", ["e0", "e1", "e2"]),
        ("afterok:41_0", ["x"]),
    ]


@pytest.mark.parametrize(
    "runs",
    [
        [("e0", ["40_0"]), ("e2", ["40_2"])],  # a gap: task 1 of the new array would be e2
        [("e1", ["40_1"]), ("e2", ["40_2"])],  # not from task 0
        [("e0", ["40_0"]), ("f0", ["40_0"])],  # two runs need the same task
        [("e0", ["40_0"]), ("e1", ["40_1"]), ("e2", ["40_2"])],  # wider than the array cap
    ],
)
def test_tasks_that_do_not_correspond_one_to_one_wait_with_afterok(
    runs: list[tuple[str, list[str]]],
) -> None:
    got = dependency_sets(runs, 2)
    assert all(dep is not None and dep.startswith("afterok:") for dep, _ in got)
    assert sorted(rid for _, ids in got for rid in ids) == sorted(r for r, _ in runs)


def test_dependency_options_keep_a_blocked_job_pending() -> None:
    assert dependency_options(None) == []
    assert dependency_options("afterok:1_2:3") == [
        ("dependency", "afterok:1_2:3"),
        ("kill-on-invalid-dep", "no"),
    ]
    with pytest.raises(InvalidOptionError):
        dependency_options("afterok:1\n#SBATCH --uid=0")


def test_array_after_the_corresponding_tasks_matches_golden() -> None:
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:1",
        output=f"/runs/.submissions/{KEY}/slurm-%A_%a.out",
        python="/opt/venv/bin/python",
        options=resource_options({"partition": "gpu", "time": "00:10:00"})
        + dependency_options("aftercorr:4242"),
        array=array_spec(3, None),
        tasks_file=f"/runs/.submissions/{KEY}/chunk-001.tasks",
    )
    assert text == (GOLDEN / "array_aftercorr.sbatch").read_text()


def _executor(**options: object) -> SlurmExecutor:
    ex = SlurmExecutor(options)
    ex._limits = Limits(max_array_size=2, max_job_count=100)  # no scontrol needed
    return ex


def test_chunks_group_by_resources_and_dependencies(tmp_path: Path) -> None:
    ex = _executor()
    runs = [make_spec("eval", i, {"i": i}, executor={"type": "slurm"}) for i in range(5)]
    dirs = ex.prepare(runs, tmp_path)
    ids = [r.run_id for r in runs]
    after = {
        ids[0]: [Upstream("t0", "50_0", "/r/t0")],
        ids[1]: [Upstream("t1", "50_1", "/r/t1")],
        ids[2]: [Upstream("u", "60", "/r/u")],
        ids[3]: [Upstream("u", "60", "/r/u")],
        # ids[4] waits for nothing
    }
    chunks = ex._chunks(dirs, after)
    got = [([rd.run_id for rd in c.runs], dict(c.options).get("dependency")) for c in chunks]
    assert got == [
        ([ids[0], ids[1]], "aftercorr:50"),
        ([ids[2], ids[3]], "afterok:60"),
        ([ids[4]], None),
    ]
    assert all(("kill-on-invalid-dep", "no") in c.options for c in chunks[:2])
    assert ("kill-on-invalid-dep", "no") not in chunks[2].options


def test_a_manifest_cannot_pass_its_own_dependency() -> None:
    with pytest.raises(InvalidOptionError, match="--dependency is set by hpcx"):
        _executor(sbatch={"dependency": "afterok:1"})
