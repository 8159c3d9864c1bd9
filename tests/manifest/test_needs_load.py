"""spec.needs at load: matching (one-to-one, aggregate), identity, placeholders, order, and
every problem with its file, line and path."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hpcx.errors import ManifestError
from hpcx.manifest.loader import load_desired, render_command, render_env, validate_paths
from hpcx.manifest.spec import DesiredState


def exp(
    name: str,
    *,
    command: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None,
    needs: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    seeds: list[int] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "command": command or ["python", f"{name}.py"],
        "params": dict(params if params is not None else {"model": "vit", "lr": 0.1}),
    }
    sweep: dict[str, Any] = {}
    if grid:
        sweep["grid"] = dict(grid)
    if seeds:
        sweep["seeds"] = seeds
    if sweep:
        spec["sweep"] = sweep
    if needs is not None:
        spec["needs"] = dict(needs)
    if env:
        spec["env"] = dict(env)
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=1) + "\n"


GRID = {"model": ["vit", "resnet"], "lr": [0.1, 0.01]}
ONE_TO_ONE = {"train": {"match": ["params.model", "params.lr"]}}


def write(root: Path, files: Mapping[str, str]) -> Path:
    folder = root / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def load(root: Path, files: Mapping[str, str], **kw: Any) -> DesiredState:
    return load_desired([write(root, files)], project_root=root, **kw)


def problems(root: Path, files: Mapping[str, str], **kw: Any) -> list[str]:
    return [str(p) for p in validate_paths([write(root, files)], project_root=root, **kw)]


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def pipeline(root: Path, **eval_kw: Any) -> DesiredState:
    eval_kw.setdefault("needs", ONE_TO_ONE)
    return load(
        root,
        {
            "eval": exp("eval", grid=GRID, **eval_kw),
            "train": exp("train", grid=GRID),
        },
    )


def test_one_to_one_match_gives_each_run_its_own_upstream(tmp_path: Path) -> None:
    d = pipeline(tmp_path)
    train = {(r.params["model"], r.params["lr"]): r for r in d.runs if r.experiment == "train"}
    evals = [r for r in d.runs if r.experiment == "eval"]
    assert len(evals) == 4
    for r in evals:
        assert r.needs == (("train", train[(r.params["model"], r.params["lr"])].run_id),)
        assert r.identity["needs"] == {"train": [r.needs[0][1]]}
    # Runs come after the runs they need, though eval.yaml is read first.
    assert [r.experiment for r in d.runs] == ["train"] * 4 + ["eval"] * 4
    assert [e.name for e in d.experiments] == ["eval", "train"]
    assert all(not r.needs for r in d.runs if r.experiment == "train")


def test_aggregate_needs_every_run_and_plural_placeholders_join_them(tmp_path: Path) -> None:
    d = load(
        tmp_path,
        {
            "train": exp("train", grid=GRID),
            "report": exp(
                "report",
                command=[
                    "python",
                    "r.py",
                    "{needs.train.run_dirs}",
                    "{needs.train.experiment_dir}",
                ],
                params={},
                needs={"train": {}},
                env={"IDS": "{needs.train.run_ids}"},
            ),
        },
    )
    train_ids = sorted(r.run_id for r in d.runs if r.experiment == "train")
    (report,) = [r for r in d.runs if r.experiment == "report"]
    assert report.needs == tuple(("train", rid) for rid in train_ids)
    run_dir = "/x/runs/report/" + report.run_id
    argv = render_command(report, run_dir)
    assert argv[2] == os.pathsep.join(f"/x/runs/train/{rid}" for rid in train_ids)
    assert argv[3] == "/x/runs/train"
    assert render_env(report, run_dir) == {"IDS": os.pathsep.join(train_ids)}
    # match: [] is the same as {}.
    d2 = load(
        tmp_path / "b",
        {
            "train": exp("train", grid=GRID),
            "report": exp("report", params={}, needs={"train": {"match": []}}),
        },
    )
    assert [r.needs for r in d2.runs if r.experiment == "report"] == [report.needs]


def test_singular_placeholders_render_the_one_upstream_run(tmp_path: Path) -> None:
    d = pipeline(
        tmp_path,
        command=["python", "e.py", "{needs.train.run_dir}/model.pt", "{needs.train.run_id}"],
    )
    for r in d.runs:
        if r.experiment != "eval":
            continue
        rid = r.needs[0][1]
        argv = render_command(r, f"/p/runs/eval/{r.run_id}")
        assert argv[2:] == [f"/p/runs/train/{rid}/model.pt", rid]


def test_match_on_seed_and_a_subset_of_paths(tmp_path: Path) -> None:
    # eval sweeps only the model: each eval run needs both lrs of its model (and its seed).
    d = load(
        tmp_path,
        {
            "train": exp("train", grid=GRID, seeds=[0, 1]),
            "eval": exp(
                "eval",
                grid={"model": ["vit", "resnet"]},
                seeds=[0, 1],
                needs={"train": {"match": ["params.model", "seed"]}},
            ),
        },
    )
    train = {r.run_id: r for r in d.runs if r.experiment == "train"}
    evals = [r for r in d.runs if r.experiment == "eval"]
    assert len(evals) == 4
    for r in evals:
        ups = [train[rid] for _, rid in r.needs]
        assert len(ups) == 2
        assert {(u.params["model"], u.seed) for u in ups} == {(r.params["model"], r.seed)}


def test_runs_without_needs_keep_their_ids(tmp_path: Path) -> None:
    alone = load(tmp_path / "a", {"train": exp("train", grid=GRID)})
    with_eval = pipeline(tmp_path / "b")
    assert [r.run_id for r in alone.runs] == [
        r.run_id for r in with_eval.runs if r.experiment == "train"
    ]


def test_a_changed_upstream_changes_the_downstream_id_not_its_base(tmp_path: Path) -> None:
    before = pipeline(tmp_path / "a")
    after = load(
        tmp_path / "b",
        {
            "eval": exp("eval", grid=GRID, needs=ONE_TO_ONE),
            "train": exp("train", grid=GRID, command=["python", "train.py", "--v2"]),
        },
    )
    old = {r.base_id: r for r in before.runs if r.experiment == "eval"}
    new = {r.base_id: r for r in after.runs if r.experiment == "eval"}
    assert old.keys() == new.keys()  # the same points
    for base, r in new.items():
        assert r.run_id != old[base].run_id
        assert r.run_id != r.base_id
    # And without needs, the eval run's id is its base id: needs alone made the difference.
    plain = load(tmp_path / "c", {"eval": exp("eval", grid=GRID)})
    assert {r.run_id for r in plain.runs} == set(old)


def _problem(found: list[str], needle: str) -> str:
    hits = [p for p in found if needle in p]
    assert hits, f"no problem with {needle!r} in {found}"
    return hits[0]


def test_unknown_experiment_has_did_you_mean_and_position(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {"eval": exp("eval", grid=GRID, needs={"trian": {}}), "train": exp("train", grid=GRID)},
    )
    p = _problem(found, "needs experiment 'trian'")
    line = line_of(tmp_path / "manifests" / "eval.yaml", '"trian"')
    assert p.startswith(f"manifests/eval.yaml:{line}:")
    assert "$.spec.needs.trian" in p and "did you mean 'train'" in p


def test_match_path_missing_on_either_side(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "eval": exp(
                "eval",
                params={"model": "vit", "lr": 0.1},
                needs={"train": {"match": ["params.modle", "seed"]}},
            ),
            "train": exp("train", grid=GRID),
        },
    )
    own = _problem(found, "this experiment has no params.modle")
    assert "$.spec.needs.train.match[0]" in own and "did you mean 'params.model'" in own
    line = line_of(tmp_path / "manifests" / "eval.yaml", '"params.modle"')
    assert own.startswith(f"manifests/eval.yaml:{line}:")
    seed = _problem(found, "no seed is set")
    assert "$.spec.needs.train.match[1]" in seed
    # This side has it, the other does not.
    found = problems(
        tmp_path / "b",
        {
            "eval": exp(
                "eval",
                params={"model": "vit", "lr": 0.1, "split": "test"},
                needs={"train": {"match": ["params.model", "params.split"]}},
            ),
            "train": exp("train", grid=GRID),
        },
    )
    other = _problem(found, "train has no params.split")
    assert other.startswith("manifests/eval.yaml:") and "$.spec.needs.train.match[1]" in other
    assert len(found) == 1


def test_a_run_that_matches_nothing_names_the_run_and_values(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "eval": exp("eval", grid={"model": ["vit", "vgg"], "lr": [0.1]}, needs=ONE_TO_ONE),
            "train": exp("train", grid=GRID),
        },
    )
    p = _problem(found, "match nothing")
    assert "$.spec.needs.train" in p
    assert "1 of 2 runs" in p and "params.model=vgg, params.lr=0.1" in p
    assert "vit" not in p.split("match nothing")[1]


def test_cycles_and_self_needs_are_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "a": exp("a", needs={"b": {}}),
            "b": exp("b", needs={"c": {}}),
            "c": exp("c", needs={"a": {}}),
            "d": exp("d", needs={"d": {}}),
        },
    )
    cycle = _problem(found, "needs form a cycle")
    assert "a -> b -> c -> a" in cycle
    assert cycle.startswith("manifests/a.yaml:") and "$.spec.needs.b" in cycle
    own = _problem(found, "experiment 'd' needs itself")
    assert own.startswith("manifests/d.yaml:") and "$.spec.needs.d" in own
    assert len([p for p in found if "cycle" in p]) == 1


def test_singular_placeholder_refused_where_a_run_needs_several(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "train": exp("train", grid=GRID),
            "report": exp(
                "report", command=["python", "r.py", "{needs.train.run_dir}"], needs={"train": {}}
            ),
        },
    )
    p = _problem(found, "{needs.train.run_dir} and {needs.train.run_id} name one run")
    assert "$.spec.command[2]" in p and "needs 4" in p and "{needs.train.run_dirs}" in p
    line = line_of(tmp_path / "manifests" / "report.yaml", "{needs.train.run_dir}")
    assert p.startswith(f"manifests/report.yaml:{line}:")


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ("{needs.trian.run_dir}", "'trian' is not in spec.needs (did you mean 'train'?)"),
        ("{needs.train.rundir}", "unknown field 'rundir' (did you mean 'run_dir'?)"),
    ],
)
def test_bad_needs_placeholders(tmp_path: Path, placeholder: str, message: str) -> None:
    found = problems(
        tmp_path,
        {
            "train": exp("train", grid=GRID),
            "eval": exp("eval", grid=GRID, needs=ONE_TO_ONE, command=["e", placeholder]),
        },
    )
    p = _problem(found, message)
    assert p.startswith("manifests/eval.yaml:") and "$.spec.command[1]" in p


def test_needs_placeholder_without_needs(tmp_path: Path) -> None:
    found = problems(tmp_path, {"eval": exp("eval", command=["e", "{needs.train.run_id}"])})
    assert "has no spec.needs" in _problem(found, "{needs.train.run_id}")


def test_a_needed_experiment_outside_the_paths_comes_from_needs_from(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "eval": exp("eval", grid=GRID, needs=ONE_TO_ONE),
            "train": exp("train", grid=GRID),
            "broken": "not: [valid",
        },
    )
    with pytest.raises(ManifestError) as err:
        load_desired([folder / "eval.yaml"], project_root=tmp_path)
    assert "not among the manifests loaded" in "\n".join(err.value.problems)
    d = load_desired([folder / "eval.yaml"], project_root=tmp_path, needs_from=[folder])
    assert {r.experiment for r in d.runs} == {"train", "eval"}
    assert "manifests/train.yaml" in d.digests and "manifests/broken.yaml" not in d.digests
    (warning,) = d.warnings
    assert warning.startswith("manifests/eval.yaml:") and "loaded from manifests/train.yaml" in (
        warning
    )


def test_schema_refuses_bad_needs(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "train": exp("train"),
            "eval": exp("eval", needs={"train": {"match": ["lr"], "on": 1}}),
        },
    )
    assert any("$.spec.needs.train" in p for p in found), found


def test_ten_thousand_by_ten_thousand_one_to_one_each_finds_its_own(tmp_path: Path) -> None:
    """Every eval of a 10k x 10k one-to-one pipeline needs exactly the train run of its own
    point. (Its speed is measured by `bench/expand_speed.py --needs`, not timed here.)"""
    grid = {"model": list(range(100)), "lr": list(range(100))}
    files = {"train": exp("train", grid=grid), "eval": exp("eval", grid=grid, needs=ONE_TO_ONE)}
    d = load(tmp_path / "b", files)
    train = {
        (r.params["model"], r.params["lr"]): r.run_id for r in d.runs if r.experiment == "train"
    }
    evals = [r for r in d.runs if r.experiment == "eval"]
    assert len(train) == len(evals) == 10_000
    for r in evals:
        assert r.needs == (("train", train[r.params["model"], r.params["lr"]]),)


def test_the_documented_example_pipeline_loads(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples" / "needs"
    d = load_desired([examples], project_root=tmp_path)
    assert [r.experiment for r in d.runs] == ["prep"] + ["train"] * 4 + ["eval"] * 4
    (prep,) = [r.run_id for r in d.runs if r.experiment == "prep"]
    assert all(r.needs == (("prep", prep),) for r in d.runs if r.experiment == "train")
    assert all(len(r.needs) == 1 for r in d.runs if r.experiment == "eval")


def test_match_compares_values_as_identities_do(tmp_path: Path) -> None:
    train = exp("train", params={"k": 1}, grid={"k": [1, 2, True, "3", [1, 2]]})
    files = {"train": train}
    files["eval"] = exp(
        "eval",
        params={"k": 1.0},
        grid={"k": [1.0, [1.0, 2]]},
        needs={"train": {"match": ["params.k"]}},
    )
    d = load(tmp_path, files)
    by_id = {r.run_id: r.params["k"] for r in d.runs if r.experiment == "train"}
    got = [[by_id[rid] for _, rid in r.needs] for r in d.runs if r.experiment == "eval"]
    assert got == [[1], [[1, 2]]]  # 1.0 is 1 (not true), [1.0, 2] is [1, 2]
    for bad in (True, "1"):
        files["eval"] = exp("eval", params={"k": bad}, needs={"train": {"match": ["params.k"]}})
        if bad is True:
            # true matches true only: the train run with k=true.
            d = load(tmp_path / "t", files)
            (ev,) = [r for r in d.runs if r.experiment == "eval"]
            assert [by_id[rid] for _, rid in ev.needs] == [True]
        else:
            assert "match nothing" in " ".join(problems(tmp_path / "s", files))


def test_a_pulled_in_experiment_brings_what_it_needs(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "prep": exp("prep"),
            "train": exp("train", grid=GRID, needs={"prep": {}}),
            "eval": exp("eval", grid=GRID, needs=ONE_TO_ONE),
        },
    )
    d = load_desired([folder / "eval.yaml"], project_root=tmp_path, needs_from=[folder])
    assert [r.experiment for r in d.runs] == ["prep"] + ["train"] * 4 + ["eval"] * 4
    assert len(d.warnings) == 2 and all("not among the paths given" in w for w in d.warnings)


def test_rendering_refuses_what_it_cannot_say(tmp_path: Path) -> None:
    import dataclasses

    d = pipeline(tmp_path, command=["e", "{needs.train.run_dir}", "{needs.train.run_dirs}"])
    run = next(r for r in d.runs if r.experiment == "eval")
    # A spec edited by hand to need two runs: the singular form names no one run.
    two = dataclasses.replace(run, needs=(("train", "a" * 16), ("train", "b" * 16)))
    with pytest.raises(ManifestError, match="needs 2 runs of 'train', not one"):
        render_command(two, "/r/runs/eval/x")
    one = dataclasses.replace(run, command=("e", "{needs.train.run_dirs}"))
    with pytest.raises(ManifestError, match="the separator of the list"):
        render_command(one, f"/r{os.pathsep}s/runs/eval/x")


def test_match_on_repeat_and_placement(tmp_path: Path) -> None:
    def with_placement(name: str, needs: Mapping[str, Any] | None) -> str:
        doc = json.loads(exp(name, grid={"placement.numa": [0, 1]}, seeds=[5, 6], needs=needs))
        doc["spec"]["placement"] = {"numa": 0}
        return json.dumps(doc)

    d = load(
        tmp_path,
        {
            "train": with_placement("train", None),
            "eval": with_placement("eval", {"train": {"match": ["placement.numa", "repeat"]}}),
        },
    )
    train = {r.run_id: r for r in d.runs if r.experiment == "train"}
    evals = [r for r in d.runs if r.experiment == "eval"]
    assert len(evals) == 4
    for r in evals:
        ((_, rid),) = r.needs
        assert (train[rid].placement["numa"], train[rid].repeat) == (
            r.placement["numa"],
            r.repeat,
        )
