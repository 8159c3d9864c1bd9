"""SLURM's time and memory units have one reader (hpcx.cluster.units): every form each caller
accepts, and every bad input, read the same way by the fit check, the job wrapper, the local
queue and the #SBATCH writer."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from hpcx.cluster.slurm import normalise_memory, normalise_time
from hpcx.cluster.units import (
    format_minutes,
    memory_gb,
    parse_memory,
    time_limit_seconds,
    time_minutes,
    time_text_seconds,
)
from hpcx.errors import InvalidOptionError

# (text, seconds): every SLURM form, with and without days.
TIME_FORMS = [
    ("90", 5400),
    ("0", 0),
    ("1:30", 90),
    ("01:02:03", 3723),
    ("100:00:00", 360000),
    ("2-0", 172800),
    ("1-12", 129600),
    ("1-02:30", 95400),
    ("1-02:03:04", 93784),
    ("007", 420),
]

# Text in no SLURM form: refused by every reader.
BAD_TIMES = [
    "1h",
    "1.5",
    "-5",
    "+5",
    "1-",
    "-1",
    "1-2-3",
    "1:2:3:4",
    "1-2:3:4:5",
    ":30",
    "1:",
    "1 - 2",
    "1_0",
    "١٢",  # digits, but not ASCII ones
    "UNLIMITEDX",
]


@pytest.mark.parametrize(("text", "seconds"), TIME_FORMS)
def test_each_time_form_reads_the_same_for_every_caller(text: str, seconds: int) -> None:
    assert time_text_seconds(text) == seconds
    assert time_limit_seconds(text) == float(seconds)
    assert time_limit_seconds(f" {text} ") == float(seconds)
    assert time_minutes(text) == pytest.approx(seconds / 60)
    assert normalise_time(text) == text


@pytest.mark.parametrize("text", BAD_TIMES)
def test_a_bad_time_is_refused_or_unknown(text: str) -> None:
    with pytest.raises(ValueError, match="not a time limit"):
        time_text_seconds(text)
    with pytest.raises(ValueError, match="not a time limit"):
        time_limit_seconds(text)
    assert time_minutes(text) is None
    with pytest.raises(InvalidOptionError):
        normalise_time(text)


@pytest.mark.parametrize(
    "word", [None, "", "  ", "none", "NONE", "unlimited", "UNLIMITED", "Infinite", "INFINITE"]
)
def test_no_limit_words_mean_no_limit_where_a_limit_is_read(word: str | None) -> None:
    assert time_limit_seconds(word) is None
    assert time_minutes(word) is None


@pytest.mark.parametrize("word", ["UNLIMITED", "none", ""])
def test_sbatch_time_takes_no_limit_words(word: str) -> None:
    # A run's --time is always a limit; "no limit" is leaving resources.time out.
    with pytest.raises(InvalidOptionError):
        normalise_time(word)


@pytest.mark.parametrize(("value", "minutes"), [(90, 90.0), (1.5, 1.5), (0, 0.0)])
def test_a_number_is_minutes(value: float, minutes: float) -> None:
    assert time_minutes(value) == minutes
    assert time_limit_seconds(value) == minutes * 60


def test_a_bool_is_no_time() -> None:
    with pytest.raises(ValueError, match="not a time limit"):
        time_limit_seconds(True)
    assert time_minutes(True) is None
    with pytest.raises(InvalidOptionError, match="not a time limit"):
        normalise_time(False)


@pytest.mark.parametrize(
    ("value", "error"),
    [(90, None), (0, "must be positive"), (-3, "must be positive"), (1.5, "not a SLURM time")],
)
def test_sbatch_time_numbers(value: Any, error: str | None) -> None:
    if error is None:
        assert normalise_time(value) == str(value)
    else:
        with pytest.raises(InvalidOptionError, match=error):
            normalise_time(value)


def test_format_minutes_writes_slurm_time() -> None:
    assert format_minutes(90) == "01:30:00"
    assert format_minutes(time_text_seconds("1-02:03:04") / 60) == "1-02:03:04"


# (text, megabytes, the --mem form or None when sbatch would not read it as written)
MEMORY_FORMS = [
    ("4000", 4000.0, "4000M"),
    ("512M", 512.0, "512M"),
    ("16G", 16384.0, "16G"),
    ("16g", 16384.0, "16G"),
    ("16GB", 16384.0, "16G"),
    ("16gb", 16384.0, "16G"),
    ("16b", 16.0, "16M"),
    ("2T", 2 * 1024.0 * 1024, "2T"),
    ("1024K", 1.0, "1024K"),
    ("016G", 16384.0, "016G"),
    ("64GiB", 65536.0, None),
    ("1.5G", 1536.0, None),
    ("16 G", 16384.0, None),  # sbatch values have no spaces
    (" 16G ", 16384.0, None),
    ("8iB", 8.0, None),
]

BAD_MEMORY = ["", "G", "16X", "16GG", "-16G", "1e3", "16 GiBs", "1.G", ".5G", "sixteen"]


@pytest.mark.parametrize(("text", "mb", "sbatch"), MEMORY_FORMS)
def test_each_memory_form_reads_the_same_for_every_caller(
    text: str, mb: float, sbatch: str | None
) -> None:
    size = parse_memory(text)
    assert size is not None and size.megabytes == pytest.approx(mb)
    assert memory_gb(text) == pytest.approx(mb / 1024)
    if sbatch is None:
        with pytest.raises(InvalidOptionError):
            normalise_memory(text)
    else:
        assert size.sbatch == sbatch
        assert normalise_memory(text) == sbatch


@pytest.mark.parametrize("text", BAD_MEMORY)
def test_a_bad_memory_size_is_refused_or_unknown(text: str) -> None:
    assert parse_memory(text) is None
    assert memory_gb(text) is None
    with pytest.raises(InvalidOptionError):
        normalise_memory(text)


@pytest.mark.parametrize(("value", "gb", "sbatch"), [(4096, 4.0, "4096M"), (512, 0.5, "512M")])
def test_a_memory_number_is_megabytes(value: int, gb: float, sbatch: str) -> None:
    assert memory_gb(value) == gb
    assert normalise_memory(value) == sbatch


def test_a_memory_bool_or_nothing_is_no_size() -> None:
    assert memory_gb(None) is None and memory_gb(True) is None
    with pytest.raises(InvalidOptionError, match="not a size"):
        normalise_memory(True)


def test_units_import_light_for_the_job_wrapper() -> None:
    # The job wrapper reads a run's time limit on every compute node: the units come without
    # the profile reader, discovery, jsonschema or duckdb.
    code = (
        "import sys, hpcx.cluster.units; "
        "heavy = [m for m in ('hpcx.cluster.profiles', 'hpcx.cluster.discover', 'jsonschema', "
        "'duckdb', 'yaml', 'ruamel') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
