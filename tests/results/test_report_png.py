"""``hpcx report --format md --figures png``: PNG files (matplotlib's Agg backend) referenced by
the markdown, valid and decodable, with the same figures the SVGs have; a clear error when the
``png`` extra is missing or PNG is asked of the HTML report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_quality_state
from typer.testing import CliRunner

from hpcx.cli import app
from hpcx.results.query import QueryError
from hpcx.results.report import build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quality_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("png") / "state.duckdb"
    build_quality_state(path)
    return path


def test_markdown_report_writes_png_figures_it_links_to(
    quality_state: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image

    out = tmp_path / "slides" / "report.md"
    out.parent.mkdir()  # hpcx never creates the folder of an output file
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--state",
            str(quality_state),
            "--format",
            "md",
            "--figures",
            "png",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    text = out.read_text()
    links = re.findall(r"!\[([^\]]*)\]\((report_files/fig-\d+\.png)\)", text)
    assert [t for t, _ in links] == [
        "throughput (samples/s) vs batch size",
        "loss per step",
        "throughput (samples/s) vs variant",
        "Tiny variants",
    ]
    assert ".svg" not in text and not list((tmp_path / "slides").rglob("*.svg"))
    for _, link in links:
        png = tmp_path / "slides" / link
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        img = matplotlib.image.imread(png)
        # 6.8 x 4 inches at 200 dpi, RGBA; and not a blank canvas
        assert img.shape == (800, 1360, 4)
        assert img[..., :3].std() > 0.05
    # the flag key and log caption reach the PNG too: the figures differ in what they draw
    sizes = {link: (tmp_path / "slides" / link).stat().st_size for _, link in links}
    assert len(set(sizes.values())) == len(sizes)


def test_png_is_refused_for_the_html_report(quality_state: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcx",
            "report",
            "--state",
            str(quality_state),
            "--figures",
            "png",
            "-o",
            str(tmp_path / "r.html"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "error: --figures png is for --format md" in res.stderr
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(QueryError, match="unknown figure format 'gif'"):
        build_report(quality_state, tmp_path / "r.md", fmt="md", figures="gif")


def test_missing_matplotlib_names_the_extra(
    quality_state: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def no_matplotlib(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_matplotlib)
    with pytest.raises(QueryError, match="PNG figures need matplotlib") as exc:
        build_report(quality_state, tmp_path / "r.md", fmt="md", figures="png")
    assert "pip install 'hpcx[png]'" in str(exc.value.hint)
    assert not (tmp_path / "r.md").exists()
