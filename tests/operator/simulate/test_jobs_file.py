"""Reading and writing the simulator's job list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from green_operator.simulate.jobs_file import JobsFileError, SimJob, read_jobs_csv, write_jobs_csv

HEADER = "id,submit_time,duration_minutes,gpus,deadline,regions,interruptible\n"


def test_round_trip(tmp_path: Path) -> None:
    jobs = [
        SimJob(
            "a",
            datetime(2020, 1, 1, 8, tzinfo=UTC),
            timedelta(minutes=90),
            4,
            datetime(2020, 1, 2, tzinfo=UTC),
            ("DE", "FR"),
            True,
        ),
    ]
    p = tmp_path / "j.csv"
    write_jobs_csv(p, jobs)
    assert read_jobs_csv(p) == jobs


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,2020-01-01T00:00:00Z,0,1,2020-01-02T00:00:00Z,DE,false", ":2: duration_minutes must be positive"),
        ("a,2020-01-01T00:00:00Z,60,0,2020-01-02T00:00:00Z,DE,false", ":2: gpus must be at least 1"),
        ("a,yesterday,60,1,2020-01-02T00:00:00Z,DE,false", ":2: submit_time: expected an ISO time"),
        ("a,2020-01-01T00:00:00Z,60,1,2020-01-02T00:00:00Z,,false", ":2: column regions is empty"),
        ("a,2020-01-01T00:00:00Z,60,1,2020-01-02T00:00:00Z,DE,maybe", ":2: interruptible: expected true or false"),
    ],
)
def test_bad_rows_name_the_line_and_column(tmp_path: Path, row: str, message: str) -> None:
    p = tmp_path / "j.csv"
    p.write_text(HEADER + row + "\n")
    with pytest.raises(JobsFileError, match=message):
        read_jobs_csv(p)


def test_missing_columns_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "j.csv"
    p.write_text("id,submit_time\n")
    with pytest.raises(JobsFileError, match="missing column"):
        read_jobs_csv(p)
    row = "a,2020-01-01T00:00:00Z,60,1,2020-01-02T00:00:00Z,DE,false\n"
    p.write_text(HEADER + row + row)
    with pytest.raises(JobsFileError, match="appears twice"):
        read_jobs_csv(p)
