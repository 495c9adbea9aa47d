"""The simulator's job list: CSV with columns id,submit_time,duration_minutes,gpus,deadline,regions,interruptible."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from green_operator.carbon.series import utc

COLUMNS = ("id", "submit_time", "duration_minutes", "gpus", "deadline", "regions", "interruptible")


class JobsFileError(ValueError):
    """A jobs file that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class SimJob:
    id: str
    submit_time: datetime
    duration: timedelta
    gpus: int
    deadline: datetime
    regions: tuple[str, ...]
    interruptible: bool = False
    """Read and written for the record; the planner runs every job in one piece (a batch Job)."""


def _time(text: str, where: str) -> datetime:
    try:
        return utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError as exc:
        raise JobsFileError(f"{where}: expected an ISO time like 2020-06-01T09:00:00Z, got {text!r}") from exc


def _bool(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes", "y"):
        return True
    if t in ("false", "0", "no", "n", ""):
        return False
    raise JobsFileError(f"{where}: expected true or false, got {text!r}")


def read_jobs_csv(path: str | Path) -> list[SimJob]:
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise JobsFileError(
                    f"{p}: missing column(s) {', '.join(missing)}; the header must be {','.join(COLUMNS)}"
                )
            jobs: list[SimJob] = []
            seen: set[str] = set()
            for lineno, row in enumerate(reader, start=2):
                where = f"{p}:{lineno}"
                job_id = (row["id"] or "").strip()
                if not job_id:
                    raise JobsFileError(f"{where}: column id is empty")
                if job_id in seen:
                    raise JobsFileError(f"{where}: id {job_id!r} appears twice")
                seen.add(job_id)
                try:
                    minutes = float(row["duration_minutes"])
                    gpus = int(row["gpus"])
                except (TypeError, ValueError) as exc:
                    raise JobsFileError(f"{where}: duration_minutes must be a number and gpus a whole number") from exc
                if minutes <= 0:
                    raise JobsFileError(f"{where}: duration_minutes must be positive, got {minutes}")
                if gpus < 1:
                    raise JobsFileError(f"{where}: gpus must be at least 1, got {gpus}")
                regions = tuple(r.strip() for r in (row["regions"] or "").split(";") if r.strip())
                if not regions:
                    raise JobsFileError(f"{where}: column regions is empty; list regions separated by ';'")
                jobs.append(
                    SimJob(
                        id=job_id,
                        submit_time=_time(row["submit_time"] or "", f"{where}: submit_time"),
                        duration=timedelta(minutes=minutes),
                        gpus=gpus,
                        deadline=_time(row["deadline"] or "", f"{where}: deadline"),
                        regions=regions,
                        interruptible=_bool(row["interruptible"] or "", f"{where}: interruptible"),
                    )
                )
    except OSError as exc:
        raise JobsFileError(f"{p}: cannot read jobs file: {exc.strerror}") from exc
    if not jobs:
        raise JobsFileError(f"{p}: no jobs")
    return jobs


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_jobs_csv(target: str | Path | TextIO, jobs: Iterable[SimJob]) -> None:
    """Write to a path, or to an open text stream (e.g. standard output)."""
    if isinstance(target, (str, Path)):
        with Path(target).open("w", newline="") as fh:
            _write(fh, jobs)
    else:
        _write(target, jobs)


def _write(fh: TextIO, jobs: Iterable[SimJob]) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(COLUMNS)
    for j in jobs:
        minutes = j.duration.total_seconds() / 60
        w.writerow(
            [
                j.id,
                _iso(j.submit_time),
                f"{minutes:g}",
                j.gpus,
                _iso(j.deadline),
                ";".join(j.regions),
                "true" if j.interruptible else "false",
            ]
        )


def check_regions(jobs: Sequence[SimJob], known: Iterable[str]) -> None:
    names = set(known)
    for j in jobs:
        unknown = [r for r in j.regions if r not in names]
        if unknown:
            raise JobsFileError(
                f"job {j.id!r} lists region(s) {', '.join(unknown)} with no --trace/--capacity; "
                f"known regions: {', '.join(sorted(names))}"
            )
