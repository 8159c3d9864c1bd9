"""Selectors that must match something: one place for "what matched nothing" and did-you-mean.

Every command that narrows its work by name (``-e``, ``--where``, ``--status``, ``--tag``,
``report EXPERIMENT``) asks :func:`check_selectors` before it acts, so a typo is exit 1 naming
the selector and the closest known name instead of "Nothing to apply" and exit 0. A selector
that matches runs with nothing to do is not an error: only one that matches no run at all.

Names are compared as users type them: ``_`` and ``-`` are near-equal (``numa_study`` suggests
``numa-study``), and a manifest's file stem suggests the experiment it defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hpcx.errors import SelectionError


def _norm(name: str) -> str:
    return name.casefold().replace("_", "-")


def did_you_mean(word: str, known: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`` (did you mean 'x'?)``, or ``""`` when nothing known is close.

    ``aliases`` maps other spellings to a known name (a manifest's file stem to its experiment
    name); an alias is named as what it is, so the user learns which name a selector takes."""
    names = sorted(set(known))
    if aliases:
        for alias, target in aliases.items():
            if target in names and (alias == word or _norm(alias) == _norm(word)):
                return (
                    f" (did you mean {target!r}? {word!r} is a manifest file; select by its "
                    "experiment name)"
                )
    by_norm: dict[str, str] = {}
    for n in names:
        by_norm.setdefault(_norm(n), n)
    if _norm(word) in by_norm:
        return f" (did you mean {by_norm[_norm(word)]!r}?)"
    import difflib  # only for a name that matched nothing

    close = difflib.get_close_matches(_norm(word), list(by_norm), n=1, cutoff=0.6)
    return f" (did you mean {by_norm[close[0]]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class Unmatched:
    """One selector that matched nothing, and why."""

    option: str  # as typed on the command line: "-e", "--where", "--status", ...
    value: str
    detail: str  # "no such experiment (did you mean 'x'?)"

    def __str__(self) -> str:
        return f"{self.option} {self.value}: {self.detail}"


def unknown_names(
    option: str,
    given: Iterable[str],
    known: Iterable[str],
    *,
    what: str = "experiment",
    aliases: Mapping[str, str] | None = None,
) -> list[Unmatched]:
    """The names in ``given`` that are not in ``known``, each with a suggestion."""
    known_set = set(known)
    out = []
    for name in dict.fromkeys(given):
        if name not in known_set:
            hint = did_you_mean(name, known_set, aliases)
            out.append(Unmatched(option, name, f"no such {what}{hint}"))
    return out


def known_list(names: Iterable[str], what: str = "experiments", limit: int = 12) -> str:
    """``known experiments: a, b, c`` (the first ``limit``), for a hint."""
    items = sorted(set(names))
    if not items:
        return f"there are no {what} yet"
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return f"known {what}: " + ", ".join(items[:limit]) + more


def raise_unmatched(unmatched: Sequence[Unmatched], *, hint: str | None = None) -> None:
    """Raise :class:`SelectionError` naming every selector in ``unmatched`` (none: return)."""
    if not unmatched:
        return
    if len(unmatched) == 1:
        message = f"{unmatched[0]}: the selection matches no run"
    else:
        message = f"{len(unmatched)} selectors match no run: " + "; ".join(
            str(u) for u in unmatched
        )
    raise SelectionError(message, hint=hint)
