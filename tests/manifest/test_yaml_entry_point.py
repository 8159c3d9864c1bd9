"""One YAML entry point (hpcx.util.yamlload): manifests, check profiles and --where values are
all read under the same caps and the YAML core schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.node.probe import CheckProfile, ProfileError, load_profile
from hpcx.run.apply import Selection
from hpcx.util.yamlload import MAX_ALIAS_NODES, MAX_BYTES, Loaded, parse_text

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefg", "bcdefgh", strict=True)
)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BOMB, f"aliases expand to more than {MAX_ALIAS_NODES} nodes"),
        ("numa_nodes: !!python/object:os.system 1\n", "is not allowed (YAML core only)"),
        ("numa_nodes: 2\nnuma_nodes: 3\n", "duplicate key 'numa_nodes'"),
        ("numa_nodes: [1, 2\n", "YAML syntax error"),
    ],
)
def test_a_check_profile_is_read_under_the_manifests_caps(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "not valid YAML" in str(err.value)
    assert needle in str(err.value)


def test_a_check_profile_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ProfileError, match=r"over the \d+-byte cap"):
        load_profile(path)


def test_a_check_profile_that_is_not_utf8_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"numa_nodes: 2 # caf\xe9\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(path)


def test_an_empty_check_profile_is_the_default_one(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing checked yet\n")
    assert load_profile(path) == CheckProfile()


def test_an_empty_document_is_data_none_only_where_allowed() -> None:
    assert not isinstance(parse_text(b"", "x"), Loaded)
    loaded = parse_text(b"# only a comment\n", "x", allow_empty=True)
    assert isinstance(loaded, Loaded) and loaded.data is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("8", 8),
        ("0.5", 0.5),
        ("true", True),
        ("null", None),
        ("", None),
        ("[1, 2]", [1, 2]),
        ("vit", "vit"),
        ("2024-01-02", "2024-01-02"),  # a date stays the text, as in a manifest's params
        ("[1, 2", "[1, 2"),  # not YAML: the text as it is
        ("!!python/object:os.system x", "!!python/object:os.system x"),
    ],
)
def test_a_where_value_is_read_as_a_manifest_value_is(raw: str, value: object) -> None:
    selection = Selection.parse(where=[f"x={raw}"])
    assert selection.where == (("x", value),)
