"""Rendering a :class:`~hpcx.plan.planner.Plan`: text for people, JSON for scripts,
markdown for a PR.

Pure functions from a plan (and a little context) to a string or a JSON-able dict; the CLI
prints them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hpcx.manifest.spec import RunSpec
from hpcx.plan.planner import (
    CHANGING_ACTIONS,
    SAVED_PLAN_FORMAT,
    SYMBOLS,
    Action,
    BlockChanges,
    Plan,
    PlanChanges,
    RunChange,
    Segment,
    changes_by_experiment,
    summary_line,
)

#: Runs listed per experiment before the rest are summarised (``--full`` lists all).
DEFAULT_LIMIT = 10

#: Order in which actions are listed and counted.
ACTION_ORDER = (
    Action.CREATE,
    Action.RETRY,
    Action.UPDATE,
    Action.STALE,
    Action.ORPHAN,
    Action.NOOP,
)

_REASON_TEXT = {
    "new": "new",
    "succeeded": "succeeded",
    "in-flight": "in flight",
    "failed-before": "{status} before",
    "settings-changed": "settings changed (resources/executor/tags/results), identity unchanged",
    "code-changed": "code changed (was {old_run_id:.12})",
    "not-in-manifests": "no longer in any manifest; results kept",
    "trial-ended": "trial {status}: a finished trial (`hpcx runs rerun` runs it again)",
    "pruned": "pruned: a finished trial",
    "needs-changed": "what it needs changed ({needs_changed}; was {old_run_id:.12})",
    "queued": "queued: held for room under the scheduler's limits; `hpcx refresh` submits it",
    "blocked": "blocked: {blocking} ended without success or not run, e.g. {example}",
    "unblocked": "unblocked: every run it needs has succeeded or is submitted now",
}

_COUNT_WORDS = {
    Action.CREATE: "to create",
    Action.RETRY: "to retry",
    Action.UPDATE: "to update",
    Action.STALE: "stale",
    Action.ORPHAN: "orphaned",
    Action.NOOP: "unchanged",
}


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What the plan does not know about itself: where things are, for the header."""

    state_path: str | None = None
    state_exists: bool = True
    manifest_paths: Sequence[str] = ()


def reason_text(change: RunChange) -> str:
    """A reason in words, with its detail."""
    template = _REASON_TEXT.get(change.reason, change.reason)
    detail: dict[str, Any] = {"status": change.prior_status or "", "old_run_id": ""}
    if change.detail:
        detail.update({k: ("" if v is None else v) for k, v in change.detail.items()})
        if isinstance(detail.get("needs_changed"), list):
            detail["needs_changed"] = (
                ", ".join(map(str, detail["needs_changed"])) or "it needs no run now"
            )
        if isinstance(detail.get("blocked_by"), dict):
            detail["blocking"] = _runs_of(detail["blocked_by"])
    try:
        text = template.format(**detail)
    except (KeyError, ValueError, IndexError):
        text = template
    if change.action is Action.RETRY:
        attempts = detail.get("attempts")
        if attempts:
            text += f", {attempts} attempt{'s' if attempts != 1 else ''}"
        if detail.get("settings_changed"):
            text += ", settings changed"
    elif change.action is Action.NOOP and change.reason == "in-flight" and change.prior_status:
        text = f"in flight ({change.prior_status})"
    elif change.action is Action.ORPHAN and change.prior_status:
        text = f"no longer in any manifest, was {change.prior_status}; results kept"
    waits = detail.get("waits_for")
    if isinstance(waits, dict) and waits and change.action in CHANGING_ACTIONS:
        text += f"; waits for {_runs_of(waits)}"
    search = change.run.extra.get("search") if change.run is not None else None
    if search and change.action is Action.CREATE:
        trial = f"search: trial {search['trial']} of {search['budget']}, {search['sampler']}"
        text = trial if change.reason == "new" else f"{text}; {trial}"
    return text


def _runs_of(counts: Mapping[str, Any]) -> str:
    """``12 runs of train and 1 run of prep``."""
    return " and ".join(
        f"{n:,} run{'s' if n != 1 else ''} of {exp}" for exp, n in sorted(counts.items())
    )


def search_lines(status: Mapping[str, Any]) -> list[str]:
    """A search's state in words: trials, the best so far, what this plan proposes."""
    obj = status["objective"]
    best = status["best"]
    head = (
        f"search: {status['sampler']}, {status['trials']} of {status['budget']} trials "
        f"({status['finished']} finished, {status['in_flight']} in flight), batch "
        f"{status['batch']}, {obj['direction']} {obj['metric']}"
    )
    if best["value"] is not None:
        head += f"; best {best['value']:.6g} (trial {best['trial']})"
    lines = [head]
    proposed = status["proposed"]
    if proposed:
        span = str(proposed[0]) if len(proposed) == 1 else f"{proposed[0]}-{proposed[-1]}"
        lines.append(f"proposes {len(proposed)} trial(s): {span}")
    elif status["exhausted"]:
        lines.append("the space has no untried point left: the search is complete")
    elif status["trials"] >= status["budget"]:
        lines.append(
            "budget spent: the search is complete"
            if status["in_flight"] == 0
            else "budget spent: waiting for the trials in flight"
        )
    elif status["in_flight"]:
        n = status["in_flight"]
        lines.append(f"batch full: the next trials come as the {n} in flight end")
    lines.extend(f"warning: {w}" for w in status["warnings"])
    return lines


def _lookup(run: RunSpec, dotted: str) -> tuple[bool, Any]:
    """The value at a dotted path: first from the run's top level (params, placement, seed...),
    then inside params (manifests write sweeps over ``model.depth`` or ``params.model.depth``)."""
    roots: dict[str, Any] = {
        "params": run.params,
        "placement": run.placement,
        "seed": run.seed,
        "repeat": run.repeat,
        "resources": run.resources,
        "executor": run.executor,
        "env": run.env,
    }
    for base in (roots, run.params):
        node: Any = base
        ok = True
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                ok = False
                break
        if ok:
            return True, node
    return False, None


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each path that is unique among ``paths``."""
    out: dict[str, str] = {}
    for p in paths:
        parts = p.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if sum(1 for q in paths if q == suffix or q.endswith("." + suffix)) == 1:
                out[p] = suffix
                break
        else:
            out[p] = p
        if out[p].startswith("params.") and out[p] != p:
            out[p] = out[p][len("params.") :]
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value and "=" not in value else json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def varying(run: RunSpec | None, swept: Sequence[str]) -> str:
    """``depth=6 numa=0``: the run's values of its experiment's swept parameters."""
    if run is None or not swept:
        return ""
    names = _short_names(swept)
    parts = []
    for path in swept:
        found, value = _lookup(run, path)
        if found:
            parts.append(f"{names[path]}={_fmt(value)}")
    return " ".join(parts)


def _counts(changes: Iterable[RunChange]) -> dict[Action, int]:
    out = dict.fromkeys(ACTION_ORDER, 0)
    for c in changes:
        out[c.action] += 1
    return out


def _counts_phrase(counts: Mapping[Action, int]) -> str:
    return ", ".join(f"{counts[a]:,} {_COUNT_WORDS[a]}" for a in ACTION_ORDER if counts[a])


def _git_lines(plan: Plan) -> list[str]:
    git = plan.git or {}
    lines = []
    dirty = list(git.get("dirty_paths") or [])
    if git.get("commit"):
        at = f"{git['commit'][:12]}" + (f" on {git['branch']}" if git.get("branch") else "")
        lines.append(
            f"Git: {at}" + (", manifests have uncommitted changes" if dirty else ", clean")
        )
    elif git.get("root") is None and "root" in git:
        lines.append("Git: manifests are not in a git repository")
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        lines.append(f"  uncommitted: {shown}")
    return lines


def render_text(
    plan: Plan,
    *,
    full: bool = False,
    limit: int = DEFAULT_LIMIT,
    context: RenderContext | None = None,
) -> str:
    """The plan for people: header, one block per experiment, the one-line total."""
    ctx = context or RenderContext()
    out: list[str] = []
    if ctx.state_path is not None:
        if ctx.state_exists:
            lineage = (plan.lineage or "")[:8]
            out.append(f"State: {ctx.state_path} (serial {plan.serial}, lineage {lineage})")
        else:
            out.append(f"State: {ctx.state_path} (none yet; apply creates it)")
    if plan.overrides:
        out.append("Overrides: " + " ".join(plan.overrides))
    out.extend(_git_lines(plan))
    if out:
        out.append("")

    groups = _groups(plan.changes)
    shared = _shared_runs(plan.changes)
    searches = {s["experiment"]: s for s in plan.searches}
    for name in searches:
        groups.setdefault(name, _Group())
    for experiment, group in groups.items():
        counts = group.counts()
        swept = plan.swept.get(experiment, ())
        out.append(f"{experiment}  ({len(group):,} runs: {_counts_phrase(counts)})")
        if swept:
            out.append(f"  varies: {', '.join(swept)}")
        if experiment in searches:
            out.extend(f"  {line}" for line in search_lines(searches[experiment]))
        waiting = _waiting(group.listed())
        if waiting:
            n_wait, ups = waiting
            out.append(
                f"  {n_wait:,} run(s) wait for runs they need that have not succeeded yet "
                f"(of {', '.join(ups)}): each starts once they have"
            )
        for owner, n in sorted(shared.pop(experiment, {}).items()):
            out.append(
                f"  also asks for {n:,} run(s) listed under {owner} (the same runs: "
                "identity does not include the experiment's name)"
            )
        for action in ACTION_ORDER:
            if not counts[action] or (action is Action.NOOP and not full):
                continue
            # Large sweeps: the first ``limit`` runs of each action, then a count.
            listed = group.first(action, None if full else limit)
            symbol = SYMBOLS[action]
            for c in listed:
                values = varying(c.run, swept)
                line = f"  {symbol} {c.run_id[:12]}"
                if values:
                    line += f"  {values}"
                line += f"  ({reason_text(c)})"
                out.append(line)
            rest = counts[action] - len(listed)
            if rest > 0:
                more = f"  {' ' * len(symbol)} ... and {rest:,} more {_COUNT_WORDS[action]}"
                out.append(more + " (--full to list every run)")
        if not full and counts[Action.NOOP]:
            out.append(f"  = {counts[Action.NOOP]:,} unchanged")
        out.append("")
    # Experiments all of whose runs another experiment already asks for.
    for experiment, owners in sorted(shared.items()):
        out.append(f"{experiment}  (no runs of its own)")
        for owner, n in sorted(owners.items()):
            out.append(f"  asks for {n:,} run(s) listed under {owner} (the same runs)")
        out.append("")
    if not groups:
        out.append("No runs: the manifests ask for none and the state holds none.")
        out.append("")
    out.append(summary_line(plan.counts()))
    return "\n".join(out) + "\n"


class _Group:
    """One experiment's changes, in order, in parts: lists of RunChanges and a plan's
    Segments (:class:`~hpcx.plan.planner.Segment`: read as columns, their changes made only
    for the runs listed)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[list[RunChange] | Segment] = []

    def add(self, c: RunChange) -> None:
        if not self.parts or not isinstance(self.parts[-1], list):
            self.parts.append([])
        cast("list[RunChange]", self.parts[-1]).append(c)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def counts(self) -> dict[Action, int]:
        out = dict.fromkeys(ACTION_ORDER, 0)
        for p in self.parts:
            if isinstance(p, Segment):
                for a, n in p.action_counts().items():
                    out[a] += n
            else:
                for c in p:
                    out[c.action] += 1
        return out

    def listed(self) -> list[RunChange]:
        """The changes held as RunChanges (a block's changes have no ``waits_for``)."""
        return [c for p in self.parts if isinstance(p, list) for c in p]

    def first(self, action: Action, limit: int | None) -> list[RunChange]:
        """The first ``limit`` changes (all: None) whose action is ``action``, in order."""
        out: list[RunChange] = []
        for p in self.parts:
            left = None if limit is None else limit - len(out)
            if left is not None and left <= 0:
                break
            if isinstance(p, Segment):
                out.extend(p.change(i) for i in p.positions(action, left))
            else:
                got = [c for c in p if c.action is action]
                out.extend(got if left is None else got[:left])
        return out


def _groups(changes: Sequence[RunChange]) -> dict[str, _Group]:
    """Changes grouped by experiment, experiments in first-seen order (a PlanChanges' blocks
    kept as columns)."""
    out: dict[str, _Group] = {}
    parts = changes.segments if isinstance(changes, PlanChanges) else [changes]
    for part in parts:
        if isinstance(part, Segment):
            for experiment, sub in part.by_experiment().items():
                group = out.get(experiment)
                if group is None:
                    group = out[experiment] = _Group()
                group.parts.append(sub)
            continue
        for c in part:
            group = out.get(c.experiment)
            if group is None:
                group = out[c.experiment] = _Group()
            group.add(c)
    return out


def _waiting(changes: Sequence[RunChange]) -> tuple[int, list[str]] | None:
    """How many of these changes wait for runs they need, and of which experiments."""
    n = 0
    ups: set[str] = set()
    for c in changes:
        waits = c.detail.get("waits_for") if c.detail else None
        if waits and c.action in CHANGING_ACTIONS:
            n += 1
            ups.update(waits)
    return (n, sorted(ups)) if n else None


# -- the needs graph --------------------------------------------------------------------------

#: Paths from a first experiment to a last one listed by ``--graph`` before the rest are counted.
GRAPH_PATH_LIMIT = 50


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """Experiment ``upstream``'s runs needed by experiment ``downstream``'s: ``edges`` pairs
    (downstream run, upstream run), of ``needing`` downstream runs and ``needed`` upstream
    ones."""

    upstream: str
    downstream: str
    edges: int
    needing: int
    needed: int

    @property
    def shape(self) -> str:
        """``one-to-one``, ``all`` (each needing run needs every needed one), or ``matched``."""
        if self.edges == self.needing == self.needed:
            return "one-to-one"
        if self.edges == self.needing * self.needed:
            return "all"
        return "matched"


def graph_edges(plan: Plan) -> list[GraphEdge]:
    """The experiment-level edges of the plan's runs' needs, in the order first met. Linear in
    the edges."""
    counts: dict[tuple[str, str], list[Any]] = {}
    for c in plan.changes:
        run = c.run
        if run is None or not run.needs:
            continue
        seen: set[str] = set()
        for exp, rid in run.needs:
            entry = counts.setdefault((exp, c.experiment), [0, 0, set()])
            entry[0] += 1
            entry[2].add(rid)
            if exp not in seen:
                seen.add(exp)
                entry[1] += 1
    return [GraphEdge(up, down, e, n, len(ids)) for (up, down), (e, n, ids) in counts.items()]


def _graph_paths(edges: Sequence[GraphEdge]) -> list[list[str]]:
    """Every path of experiments from a first one (it needs none) to a last one (none needs
    it), at most :data:`GRAPH_PATH_LIMIT` + 1 of them."""
    succ: dict[str, list[str]] = {}
    has_pred: set[str] = set()
    for e in edges:
        succ.setdefault(e.upstream, []).append(e.downstream)
        has_pred.add(e.downstream)
    roots = [n for n in succ if n not in has_pred]
    out: list[list[str]] = []
    stack = [[r] for r in reversed(roots)]
    while stack and len(out) <= GRAPH_PATH_LIMIT:
        path = stack.pop()
        nxt = succ.get(path[-1], [])
        if not nxt:
            out.append(path)
        stack.extend([*path, n] for n in reversed(nxt) if n not in path)
    return out


def render_graph(plan: Plan, *, full: bool = False, limit: int = DEFAULT_LIMIT) -> str:
    """The needs graph for people: each path of experiments (``prep (1) -> train (12) ->
    eval (12)``, runs in brackets), each edge with its count and shape, and with ``full``
    each run's needs (else the first ``limit`` runs of each experiment)."""
    edges = graph_edges(plan)
    out = ["Graph:"]
    if not edges:
        out.append("  no run needs another (no spec.needs among the manifests planned)")
        return "\n".join(out) + "\n"
    runs: dict[str, int] = {}
    for c in plan.changes:
        if c.run is not None:
            runs[c.experiment] = runs.get(c.experiment, 0) + 1
    paths = _graph_paths(edges)
    for path in paths[:GRAPH_PATH_LIMIT]:
        out.append("  " + " -> ".join(f"{n} ({runs.get(n, 0):,})" for n in path))
    if len(paths) > GRAPH_PATH_LIMIT:
        out.append("  ... and more paths (the edges below are all of them)")
    out.append("Edges:")
    for e in edges:
        out.append(
            f"  {e.upstream} -> {e.downstream}: {e.edges:,} edge{'s' if e.edges != 1 else ''} "
            f"({e.shape}; {e.needing:,} run(s) of {e.downstream} need {e.needed:,} of "
            f"{e.upstream})"
        )
    shown: dict[str, int] = {}
    lines: list[str] = []
    hidden = 0
    for c in plan.changes:
        run = c.run
        if run is None or not run.needs:
            continue
        shown[c.experiment] = shown.get(c.experiment, 0) + 1
        if not full and shown[c.experiment] > limit:
            hidden += 1
            continue
        needs = [f"{exp}/{rid[:12]}" for exp, rid in run.needs]
        more = f" and {len(needs) - 3:,} more" if len(needs) > 3 and not full else ""
        listed = needs if full else needs[:3]
        lines.append(f"  {c.experiment}/{c.run_id[:12]} <- {', '.join(listed)}{more}")
    out.append("Runs:")
    out.extend(lines)
    if hidden:
        out.append(f"  ... and {hidden:,} more runs with needs (--full to list every run)")
    return "\n".join(out) + "\n"


def _shared_runs(changes: Sequence[RunChange]) -> dict[str, dict[str, int]]:
    """experiment -> {experiment that lists the run: count} for runs two experiments share."""
    out: dict[str, dict[str, int]] = {}
    if isinstance(changes, PlanChanges):
        for part in changes.segments:
            if isinstance(part, BlockChanges):
                for extra in part.block.extras().values():
                    for other in extra.get("also_in") or ():
                        per = out.setdefault(str(other), {})
                        per[part.experiment] = per.get(part.experiment, 0) + 1
            elif not isinstance(part, Segment):  # (orphans: no run, nothing shared)
                _shared_into(out, part)
        return out
    _shared_into(out, changes)
    return out


def _shared_into(out: dict[str, dict[str, int]], changes: Iterable[RunChange]) -> None:
    for c in changes:
        if c.run is None:
            continue
        for other in c.run.extra.get("also_in") or ():
            per = out.setdefault(str(other), {})
            per[c.experiment] = per.get(c.experiment, 0) + 1


def render_json(plan: Plan, *, context: RenderContext | None = None) -> dict[str, Any]:
    """The plan for scripts. Keys (stable, documented in docs/state-and-plan.md):

    format, format_version, created_at, state {path, exists, lineage, serial}, manifests
    {paths, digests}, overrides, git {root, commit, branch, dirty_paths, dirty}, summary
    {create, noop, retry, update, stale, orphan}, has_changes, experiments [{name, swept,
    summary}], changes [{action, symbol, reason, run_id, experiment, prior_status, detail,
    params, search, needs}], graph [{upstream, downstream, edges, needing, needed, shape}].
    """
    ctx = context or RenderContext()
    git = dict(plan.git or {})
    git.setdefault("dirty_paths", [])
    git["dirty"] = bool(git["dirty_paths"])
    groups = changes_by_experiment(plan.changes)
    return {
        "format": "hpcx-plan-report",
        "format_version": SAVED_PLAN_FORMAT,
        "created_at": plan.created_at,
        "state": {
            "path": ctx.state_path,
            "exists": ctx.state_exists,
            "lineage": plan.lineage,
            "serial": plan.serial,
        },
        "manifests": {"paths": list(ctx.manifest_paths), "digests": plan.manifest_digests},
        "overrides": list(plan.overrides),
        "git": git,
        "summary": plan.counts(),
        "has_changes": plan.has_changes,
        "searches": list(plan.searches),
        "experiments": [
            {
                "name": name,
                "swept": list(plan.swept.get(name, ())),
                "summary": {a.value: n for a, n in _counts(changes).items()},
            }
            for name, changes in groups.items()
        ],
        "changes": [
            {
                "action": c.action.value,
                "symbol": SYMBOLS[c.action],
                "reason": c.reason,
                "run_id": c.run_id,
                "experiment": c.experiment,
                "prior_status": c.prior_status,
                "detail": dict(c.detail) if c.detail is not None else None,
                "params": c.run.params if c.run is not None else None,
                "search": _search_of(c.run),
                "needs": [list(n) for n in c.run.needs] if c.run is not None else None,
            }
            for c in plan.changes
        ],
        "graph": [
            {
                "upstream": e.upstream,
                "downstream": e.downstream,
                "edges": e.edges,
                "needing": e.needing,
                "needed": e.needed,
                "shape": e.shape,
            }
            for e in graph_edges(plan)
        ],
    }


def _search_of(run: RunSpec | None) -> dict[str, Any] | None:
    """A trial's place in its search, for --json (None: not a trial)."""
    search = run.extra.get("search") if run is not None else None
    if not search:
        return None
    return {k: search[k] for k in ("key", "trial", "budget", "sampler", "values")}


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def render_markdown(
    plan: Plan,
    *,
    full: bool = False,
    limit: int = 20,
    context: RenderContext | None = None,
) -> str:
    """The plan for a pull-request comment: the total, a table per experiment, details folded."""
    out = ["### hpcx plan", "", f"**{summary_line(plan.counts())}**", ""]
    git = plan.git or {}
    dirty = list(git.get("dirty_paths") or [])
    if dirty:
        out.append(
            "> **Warning:** manifests have uncommitted changes: "
            + ", ".join(f"`{_md_cell(p)}`" for p in dirty[:10])
            + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        )
        out.append("")
    if git.get("commit"):
        out.append(f"Planned at commit `{git['commit'][:12]}`, state serial {plan.serial}.")
        out.append("")
    if plan.overrides:
        out.append("Overrides: " + " ".join(f"`{_md_cell(o)}`" for o in plan.overrides))
        out.append("")
    groups = changes_by_experiment(plan.changes)
    header = ["experiment"] + [_COUNT_WORDS[a] for a in ACTION_ORDER]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * len(ACTION_ORDER)) + "|")
    for name, changes in groups.items():
        counts = _counts(changes)
        out.append(
            "| "
            + " | ".join([f"`{_md_cell(name)}`"] + [f"{counts[a]:,}" for a in ACTION_ORDER])
            + " |"
        )
    out.append("")
    for status in plan.searches:
        lines = search_lines(status)
        out.append(f"- `{_md_cell(status['experiment'])}`: " + "; ".join(map(_md_cell, lines)))
    if plan.searches:
        out.append("")
    for name, changes in groups.items():
        shown = [
            c for c in changes if full or c.action in CHANGING_ACTIONS or c.action is Action.ORPHAN
        ]
        if not shown:
            continue
        swept = plan.swept.get(name, ())
        order = {a: i for i, a in enumerate(ACTION_ORDER)}
        shown.sort(key=lambda c: order[c.action])
        if full:
            listed = shown
        else:
            # The first ``limit`` runs of each action, so no action hides behind another.
            seen: dict[Action, int] = {}
            listed = []
            for c in shown:
                seen[c.action] = seen.get(c.action, 0) + 1
                if seen[c.action] <= limit:
                    listed.append(c)
        out.append(
            f"<details><summary><code>{_md_cell(name)}</code>: {len(shown):,} runs</summary>"
        )
        out.append("")
        out.append("| | run | parameters | reason |")
        out.append("|---|---|---|---|")
        for c in listed:
            out.append(
                f"| {SYMBOLS[c.action]} | `{c.run_id[:12]}` | {_md_cell(varying(c.run, swept))} "
                f"| {_md_cell(reason_text(c))} |"
            )
        if len(shown) > len(listed):
            out.append(f"| | | ... and {len(shown) - len(listed):,} more | |")
        out.append("")
        out.append("</details>")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
