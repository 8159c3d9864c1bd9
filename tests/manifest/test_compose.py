"""extends: ordered deep merge, cycles, missing bases, what is and is not inherited."""

from __future__ import annotations

from hpcx.manifest.loader import load_desired, validate_paths


def test_bases_merge_in_order_then_the_file(write) -> None:
    write(
        "a.yaml", "abstract: true\nspec:\n  params: {x: 1, y: 1, nested: {p: 1, q: 1}, l: [1, 2]}\n"
    )
    write("b.yaml", "abstract: true\nspec:\n  params: {y: 2, nested: {q: 2}, l: [9]}\n")
    f = write(
        "exp.yaml",
        """
        extends: [a.yaml, b.yaml]
        metadata: {name: exp}
        spec:
          workload: noop
          params: {nested: {r: 3}}
        """,
    )
    state = load_desired([f])
    assert state.runs[0].params == {"x": 1, "y": 2, "nested": {"p": 1, "q": 2, "r": 3}, "l": [9]}


def test_later_base_wins_over_earlier(write) -> None:
    write("a.yaml", "abstract: true\nspec:\n  params: {v: a}\n")
    write("b.yaml", "abstract: true\nspec:\n  params: {v: b}\n")
    f = write("e.yaml", "extends: [b.yaml, a.yaml]\nmetadata: {name: e}\nspec: {workload: noop}\n")
    assert load_desired([f]).runs[0].params == {"v": "a"}


def test_bases_compose_transitively_relative_to_their_own_file(write) -> None:
    write("bases/root.yaml", "abstract: true\nspec:\n  workload: noop\n  params: {a: 1}\n")
    write("bases/mid.yaml", "abstract: true\nextends: root.yaml\nspec:\n  params: {b: 2}\n")
    f = write("sub/e.yaml", "extends: ../bases/mid.yaml\nmetadata: {name: e}\nspec: {}\n")
    state = load_desired([f])
    assert state.runs[0].params == {"a": 1, "b": 2}
    assert len(state.digests) == 3


def test_extends_cycle_is_an_error_naming_the_chain(write) -> None:
    write("a.yaml", "abstract: true\nextends: b.yaml\n")
    write("b.yaml", "abstract: true\nextends: a.yaml\n")
    f = write("e.yaml", "extends: a.yaml\nmetadata: {name: e}\nspec: {workload: noop}\n")
    problems = [str(p) for p in validate_paths([f])]
    assert any("extends cycle: a.yaml -> b.yaml -> a.yaml" in p for p in problems), problems
    assert any(p.startswith("b.yaml:4:10: $.extends: ") for p in problems), problems


def test_missing_base_is_an_error_at_the_entry(write) -> None:
    f = write("e.yaml", "extends: [nope.yaml]\nmetadata: {name: e}\nspec: {workload: noop}\n")
    (p,) = validate_paths([f])
    assert (
        str(p)
        == "e.yaml:3:11: $.extends[0]: base manifest not found: nope.yaml (looked for nope.yaml)"
    )


def test_name_and_abstract_are_not_inherited(write) -> None:
    write(
        "base.yaml",
        "abstract: true\nmetadata: {name: base, owner: me}\nspec: {workload: noop}\n",
    )
    f = write("e.yaml", "extends: base.yaml\nmetadata: {description: d}\nspec: {}\n")
    (p,) = validate_paths([f])
    assert "missing required key 'name'" in str(p)
    g = write("g.yaml", "extends: base.yaml\nmetadata: {name: g}\nspec: {}\n")
    state = load_desired([g])
    assert state.experiments[0].owner == "me"
    assert len(state.runs) == 1


def test_a_folder_is_one_desired_state_and_abstract_files_yield_no_runs(write, tmp_path) -> None:
    write("bases/b.yaml", "abstract: true\nspec: {workload: noop, params: {x: 1}}\n")
    write("one.yaml", "extends: bases/b.yaml\nmetadata: {name: one}\nspec: {}\n")
    write("two.yaml", "extends: bases/b.yaml\nmetadata: {name: two}\nspec: {params: {x: 2}}\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "junk.yaml").write_text("not: [valid")
    state = load_desired([tmp_path])
    assert [e.name for e in state.experiments] == ["one", "two"]
    assert [r.params["x"] for r in state.runs] == [1, 2]


def test_error_in_a_base_points_into_the_base(write) -> None:
    write("base.yaml", "abstract: true\nspec:\n  workload: noop\n  retries: many\n")
    f = write("e.yaml", "extends: base.yaml\nmetadata: {name: e}\nspec: {}\n")
    (p,) = validate_paths([f])
    assert str(p) == 'base.yaml:6:12: $.spec.retries: expected an integer, got string "many"'


def test_a_param_an_inherited_axis_replaces_is_an_error_naming_the_axis(write) -> None:
    write(
        "base.yaml",
        "metadata: {name: base}\nspec:\n  workload: noop\n  params: {bs: 4, lr: 0.1}\n"
        "  sweep:\n    grid: {bs: [4, 8]}\n",
    )
    f = write(
        "child.yaml",
        "extends: base.yaml\nmetadata: {name: child}\nspec:\n  params: {bs: 16, lr: 0.2}\n",
    )
    (p,) = validate_paths([f])
    text = str(p)
    child_line = f.read_text().splitlines().index("  params: {bs: 16, lr: 0.2}") + 1
    base_line = (f.parent / "base.yaml").read_text().splitlines().index("    grid: {bs: [4, 8]}")
    assert text.startswith(f"child.yaml:{child_line}:")
    assert "$.spec.params.bs" in text
    assert f"grid axis 'bs' inherited from base.yaml:{base_line + 1}" in text
    assert "never used" in text
    # lr is not swept: the child's value holds; a file setting its own axis is not flagged.
    ok = write(
        "own.yaml",
        "extends: base.yaml\nmetadata: {name: own}\nspec:\n  params: {lr: 0.2}\n"
        "  sweep:\n    grid: {bs: [16]}\n",
    )
    assert validate_paths([ok]) == []
    assert [r.params["bs"] for r in load_desired([ok]).runs] == [16]
