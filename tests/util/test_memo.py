"""ByIdentity: one value per object, made once, never another object's by a reused id."""

from __future__ import annotations

from hpcx.util.memo import ByIdentity


def test_a_value_is_made_once_per_object_and_equal_objects_are_apart() -> None:
    calls: list[object] = []

    def make(obj: object) -> int:
        calls.append(obj)
        return len(calls)

    memo = ByIdentity(make)
    a, b = {"x": 1}, {"x": 1}
    assert memo(a) == 1
    assert memo(a) == 1
    assert memo(b) == 2  # equal, but another object
    assert calls == [a, b] and calls[0] is a


def test_an_id_reused_by_another_object_is_not_taken_for_the_first() -> None:
    memo = ByIdentity(lambda obj: "made")
    first = object()
    memo(first)
    # Forge what id reuse would look like: another object under the first one's id.
    memo._done[id(first)] = (object(), "stale")
    assert memo(first) == "made"
