"""The kill campaign's machinery (a uniquely named module, not conftest): start the real CLI in
its own process group, SIGKILL the whole group at a seeded random moment, recover with
``refresh`` + ``apply`` until nothing is left to do, and check the invariants after every
round.

What "one successful execution" means here: the test program (tests/support/progs/prog.py) is
run with ``--metric v X --log LOG`` *last*, so its one ``O_APPEND`` line to the shared log is
written after its metric and just before it exits. Nothing in the campaign kills a wrapper or
a program (only the ``hpcx`` process group is killed; wrappers run in their own sessions), so
every program that starts also reaches that line: a run's log lines count its executions. The
chain ``status.json succeeded <= log lines <= .claim-N files <= 1`` must hold per run folder
at every moment (read in that order, since each step happens after the one before), and at
the end every desired run has exactly one of each, the state says ``succeeded``, and its
metrics rows equal its ``metrics.jsonl`` lines.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.cli import HPCX, clean_env, hpcx
from support.projects import (
    assert_history_has_no_gap,
    log_lines,
    make_project,
    manifest,
    query,
    run_folders,
    state_path,
)

ZYGOTE_BROKEN_PIPE = "BrokenPipeError: [Errno 32] Broken pipe"
SLOW = os.environ.get("HPCX_SLOW") == "1"
# `queued` waits in hpcx's queue for room under the scheduler's limits: in flight for the campaign.
IN_FLIGHT = ("pending", "submitted", "running", "queued")


@dataclass
class Tally:
    """What one campaign did, for its summary line and the figures in docs/reliability.md."""

    name: str
    runs: int = 0
    kills: int = 0  # SIGKILLs delivered to a live hpcx process group
    missed: int = 0  # moments drawn after the command had already ended
    rounds: int = 0  # invariant checks passed
    recoveries: int = 0  # refresh/apply commands run to recover
    duplicates: int = 0
    lost: int = 0
    zygote_tracebacks: int = 0
    empty_states: int = 0  # empty state files set aside (a known bug, see empty_state)
    stale_restarts: int = 0  # wrappers of a non-current attempt started (none may run)
    t0: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        return (
            f"[kill campaign] {self.name}: {self.runs} runs, {self.kills} kills survived "
            f"({self.missed} moments after the command ended), {self.rounds} rounds checked, "
            f"{self.recoveries} recovery commands, duplicates {self.duplicates}, "
            f"lost {self.lost}, {time.monotonic() - self.t0:.1f} s"
            + (f", zygote tracebacks {self.zygote_tracebacks}" if self.zygote_tracebacks else "")
            + (f", empty states set aside {self.empty_states}" if self.empty_states else "")
            + (f", stale attempts restarted {self.stale_restarts}" if self.stale_restarts else "")
        )


def sweep_project(
    root: Path,
    log: Path,
    n: int,
    *,
    name: str = "kc",
    executor: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Path:
    """A git project with one experiment of ``n`` quick runs that log at their end."""
    text = manifest(
        name,
        ["--metric", "v", "{params.x}", "--log", str(log)],
        params={"x": 0},
        grid={"x": list(range(n))},
        executor=executor,
        resources=resources,
    )
    return make_project(root, {name: text})


def spawn_group(
    root: Path, args: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``hpcx ARGS`` as the leader of its own process group (its children share the group)."""
    return subprocess.Popen(
        [HPCX, *args],
        cwd=root,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill_at(proc: subprocess.Popen[bytes], delay: float, tally: Tally) -> bool:
    """SIGKILL ``proc``'s whole process group ``delay`` seconds after it started (unless it
    ended before). Returns whether a live process was killed."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
    killed = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        killed = False
    proc.wait(timeout=60)
    if proc.stderr is not None:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if ZYGOTE_BROKEN_PIPE in err:
            # Known, cosmetic (test_zygote_exits_quietly_when_its_queue_is_gone, xfail): the
            # fork server answers a queue that was just killed and prints its BrokenPipeError
            # on the stderr it inherited from apply. The run it forked goes on, and must
            # still execute exactly once (checked).
            tally.zygote_tracebacks += 1
            err = err.replace(ZYGOTE_BROKEN_PIPE, "")
            err = err.replace("Traceback (most recent call last):", "", 1)
        assert "Traceback" not in err, err
    if killed and proc.returncode == -signal.SIGKILL:
        tally.kills += 1
        return True
    tally.missed += 1
    return False


def timed(root: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    t0 = time.monotonic()
    hpcx(root, *args, env=env, timeout=600, check=True)
    return time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# Invariants


def _status_state(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("state")
    except (OSError, ValueError):
        return None


def _folder_facts(folder: Path) -> tuple[int, int]:
    """(succeeded attempts, claims) of a run folder, successes read first."""
    ok = sum(
        _status_state(p) == "succeeded"
        for p in [folder / "status.json", *folder.glob("attempts/*/status.json")]
    )
    return ok, len(list(folder.glob(".claim-*")))


#: Lines a run may write that the state cannot store (issue 11): each must be reported and
#: skipped, never block the refresh, never cost the run's other lines. The marker key lets
#: the campaign's own oracle (_metrics_file) leave them out; the reader ignores it.
HOSTILE_LINES = (
    '{"name": "v", "value": 1.0, "step": 9223372036854775808, "kc_hostile": 1}',
    '{"name": "big", "value": ' + "9" * 400 + ', "kc_hostile": 1}',
    '{"name": "t", "value": 1.0, "time": ' + "9" * 400 + ', "kc_hostile": 1}',
    '{"name": "t", "value": 1.0, "time": 1e300, "kc_hostile": 1}',
    '{"name": "deep", "value": 1.0, "x": ' + "[" * 100000 + "]" * 100000 + "}",
    '{"name": "bad\\ud800", "value": 1.0, "kc_hostile": 1}',
    '{"meta": {"git_commit": "forged", "x": NaN}, "kc_hostile": 1}',
)


def append_hostile(folder: Path, rng: random.Random) -> None:
    """Append one to three hostile lines (drawn by ``rng``) to a run folder's metrics file."""
    lines = [rng.choice(HOSTILE_LINES) for _ in range(rng.randint(1, 3))]
    with open(folder / "metrics.jsonl", "a", encoding="utf-8", errors="surrogatepass") as f:
        f.write("".join(line + "\n" for line in lines))


def _metrics_file(folder: Path) -> collections.Counter[tuple[Any, ...]]:
    out: collections.Counter[tuple[Any, ...]] = collections.Counter()
    try:
        text = (folder / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        if line.strip():
            try:
                d = json.loads(line)
            except RecursionError:
                continue  # a hostile line (nested too deep to read)
            if "kc_hostile" in d or "name" not in d:
                continue
            out[(d["name"], d.get("step"), float(d["value"]))] += 1
    return out


def empty_state(root: Path) -> bool:
    """Whether the state is a DuckDB file with no tables at all: what an apply killed between
    creating the file and committing its schema leaves (see the strict xfail
    test_an_apply_killed_while_creating_the_state_does_not_brick_the_project)."""
    import duckdb

    path = state_path(root)
    if not path.exists() or Path(str(path) + ".wal").exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        return not con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    finally:
        con.close()


def set_aside_empty_state(root: Path, tally: Tally) -> None:
    """Work around that bug the way its hint says (move the file aside), counted."""
    if empty_state(root):
        path = state_path(root)
        path.rename(path.with_name(f"state.duckdb.empty-{tally.empty_states}"))
        tally.empty_states += 1


def check_round(
    root: Path,
    log: Path,
    tally: Tally,
    *,
    experiment: str = "kc",
    final: bool = False,
    env: Mapping[str, str] | None = None,
) -> None:
    """The campaign's invariants, checked after every round (``final``: and at the end)."""
    folders = {f.name: f for f in run_folders(root, experiment)}
    facts = {rid: _folder_facts(f) for rid, f in folders.items()}
    lines = log_lines(log)
    per_run = collections.Counter(ln.split()[0] for ln in lines)
    # A duplicate is a second execution of one run (two lines), whatever else agrees.
    dup = sum(c - 1 for c in per_run.values() if c > 1)
    tally.duplicates += dup
    assert dup == 0, f"runs executed twice: {[r for r, c in per_run.items() if c > 1]}"
    assert len({ln.split()[2] for ln in lines}) == len(lines), "one pid logged twice"
    facts_after = {rid: _folder_facts(f) for rid, f in folders.items()}
    for rid in set(per_run) | set(folders):
        ok, _ = facts.get(rid, (0, 0))
        _, nclaims = facts_after.get(rid, (0, 0))
        assert ok <= per_run[rid] <= nclaims <= 1, (rid, ok, per_run[rid], nclaims)

    set_aside_empty_state(root, tally)
    if not state_path(root).exists():
        return
    check = hpcx(root, "state", "check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    if query(root, "SELECT count(*) FROM runs")[0][0]:
        assert_history_has_no_gap(root)  # (killed before its first intent: no history yet)
    rows = query(
        root,
        "SELECT r.run_id, r.status, r.attempts, r.run_dir, s.state FROM runs r "
        "LEFT JOIN submissions s ON s.key = r.submission_key WHERE r.experiment = ?",
        [experiment],
    )
    state = {r[0]: r[:4] for r in rows}
    # A run whose apply was killed after sbatch and before recording it: its submission is
    # still an intent (or ambiguous), its job may have started and claimed it, and nothing has
    # counted that attempt yet. The next refresh adopts the job and counts it (checked after
    # the recovery, `final`).
    unsettled = {r[0] for r in rows if r[4] in ("intent", "ambiguous")}
    metrics: dict[str, collections.Counter[tuple[Any, ...]]] = collections.defaultdict(
        collections.Counter
    )
    for rid, name, step, value in query(root, "SELECT run_id, name, step, value FROM metrics"):
        metrics[rid][(name, step, float(value))] += 1
    for rid, status, attempts, run_dir in state.values():
        nclaims = facts_after.get(rid, (0, 0))[1]
        assert attempts >= nclaims or (rid in unsettled and not final), (rid, attempts, nclaims)
        if status == "succeeded":
            assert facts_after[rid][0] == 1 and per_run[rid] == 1, (rid, facts_after[rid])
            # Every metric the run produced is in the state, once.
            produced = _metrics_file(Path(run_dir))
            assert produced and metrics[rid] == produced, (rid, metrics[rid], produced)
            assert sum(c for (n, _, _), c in produced.items() if n == "v") == 1
        else:
            # Nothing here fails or is cancelled: a killed apply leaves runs lost or in flight.
            assert status in (*IN_FLIGHT, "lost"), (rid, status)
    if final:
        tally.lost = sum(1 for r in state.values() if r[1] != "succeeded")
        assert tally.lost == 0, {r[0]: r[1] for r in state.values() if r[1] != "succeeded"}
        assert len(state) == tally.runs, (len(state), tally.runs)
        assert set(per_run) == set(state) and all(c == 1 for c in per_run.values())
        assert all(facts_after[rid] == (1, 1) for rid in state), "one claim, one success"
        left = query(
            root, "SELECT count(*) FROM runs WHERE status IN ('pending','submitted','running')"
        )
        assert left[0][0] == 0
    tally.rounds += 1


def recover(
    root: Path,
    tally: Tally,
    *,
    env: Mapping[str, str] | None = None,
    apply_args: Sequence[str] = (),
    limit: float = 300,
) -> None:
    """``refresh`` + ``apply --yes`` until every run succeeded and nothing is in flight
    (runs whose wrappers outlived a killed apply are waited for, never rerun). Bounded."""
    deadline = time.monotonic() + limit
    for _ in range(200):
        set_aside_empty_state(root, tally)
        if not state_path(root).exists():
            # Killed before the state was first written: nothing to refresh yet.
            hpcx(root, "apply", "--yes", "-q", *apply_args, env=env, timeout=600, check=True)
            tally.recoveries += 1
        hpcx(root, "refresh", env=env, timeout=600, check=True)
        tally.recoveries += 1
        rows = query(root, "SELECT status, count(*) FROM runs GROUP BY status")
        counts = dict(rows)
        if counts.get("succeeded", 0) == tally.runs and len(counts) == 1:
            return
        plan = hpcx(root, "plan", env=env, check=True).stdout
        if "0 to create, 0 to retry" not in plan:
            hpcx(root, "apply", "--yes", "-q", *apply_args, env=env, timeout=600, check=True)
            tally.recoveries += 1
        elif any(counts.get(s) for s in IN_FLIGHT):
            time.sleep(0.3)
        else:
            raise AssertionError(f"nothing to apply yet not all succeeded: {counts}")
        assert time.monotonic() < deadline, f"not recovered after {limit}s: {counts}"
    raise AssertionError("recovery loop did not converge")


def restart_stale_attempt(
    root: Path, rng: random.Random, tally: Tally, *, experiment: str = "kc"
) -> None:
    """Start the job wrapper for an attempt of a run that is not its current one, as a requeued
    or forgotten scheduler job would: an earlier attempt (whose claim may never have been
    taken: it was lost before it started) or, for a run at its first attempt, a later one.
    It must run nothing (check_round counts executions) and write nothing of its own."""
    folders = []
    for folder in run_folders(root, experiment):
        try:
            folders.append((folder, int(json.loads((folder / "spec.json").read_text())["attempt"])))
        except (OSError, ValueError, KeyError):
            continue
    if not folders:
        return
    older = [(f, a) for f, a in folders if a > 1]
    folder, current = rng.choice(older or folders)
    stale = rng.randint(1, current - 1) if current > 1 else current + 1
    had_claim = (folder / f".claim-{stale}").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx.job", str(folder), "--attempt", str(stale)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    tally.stale_restarts += 1
    assert proc.returncode == 0, (folder, stale, proc.stderr)
    assert "not the current attempt" in proc.stderr, (folder, stale, proc.stderr)
    assert (folder / f".claim-{stale}").exists() == had_claim, (folder, stale)
    # status.json is only ever the current attempt's (an earlier one's moved to attempts/).
    assert _status_attempt(folder / "status.json") != stale, (folder, stale)


def _status_attempt(path: Path) -> int | None:
    try:
        attempt = json.loads(path.read_text()).get("attempt")
    except (OSError, ValueError):
        return None
    return attempt if isinstance(attempt, int) else None


def rng_for(seed: int) -> random.Random:
    return random.Random(seed)
