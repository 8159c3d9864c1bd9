"""After `hpcx state restore`, the runs submitted since the backup are adopted from their
submission folders by the next refresh, never submitted again."""

from __future__ import annotations

from pathlib import Path

from support.cli import hpcx
from support.projects import log_lines, manifest, query


def test_restore_then_apply_adopts_later_runs_instead_of_resubmitting(project, tmp_path) -> None:
    log = tmp_path / "executions.log"
    first = manifest("first", ["--log", str(log)], grid={"i": [0, 1]})
    root = project({"first": first})
    hpcx(root, "apply", "--yes", "-q", check=True)
    # A second experiment, applied after the backup that this apply takes first.
    (root / "manifests" / "second.yaml").write_text(
        manifest("second", ["--log", str(log), "--metric", "x", "1"], grid={"i": [0, 1, 2]})
    )
    hpcx(root, "apply", "--yes", "-q", check=True)
    assert len(log_lines(log)) == 5

    restored = hpcx(root, "state", "restore", "--force", check=True)
    assert "restored" in restored.stdout.lower()
    # The restored state predates `second`: the next apply must adopt its 3 runs from disk.
    assert query(root, "SELECT count(*) FROM runs WHERE experiment = 'second'")[0][0] == 0

    out = hpcx(root, "apply", "--yes", check=True).stdout
    assert "Nothing to apply" in out, out
    assert len(log_lines(log)) == 5, "a run was executed twice"
    rows = dict(
        query(root, "SELECT experiment, count(*) FROM runs WHERE status = 'succeeded' GROUP BY 1")
    )
    assert rows == {"first": 2, "second": 3}
    assert Path(root / "runs" / ".submissions").is_dir()
