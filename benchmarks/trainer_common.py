"""Helpers shared by the trainer benchmarks: run the reference training bare or under the wrapper."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GREEN_TRAINER = str(Path(sys.executable).parent / "green-trainer")
REFERENCE = [sys.executable, "-m", "green_trainer.reference_train"]


@dataclass
class Run:
    done: dict[str, Any]
    report: dict[str, Any] | None
    scrapes: int

    @property
    def steps_per_second(self) -> float:
        return float(self.done["steps_per_second"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any GREEN_* setting: in particular never a power limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREEN_")}
    env.update(extra)
    return env


def _scrape_loop(port: int, interval: float, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(interval):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                response.read()
                count[0] += 1
        except OSError:
            pass  # not serving yet, or already gone


def run_command(command: list[str], *, env: dict[str, str], scrape_interval: float | None = None) -> int:
    """Any command under the wrapper (no report kept); returns its exit status."""
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        run_env = {
            **env,
            "GREEN_REPORT_PATH": str(Path(directory) / "report.json"),
            "GREEN_METRICS_PORT": str(port) if scrape_interval else "0",
            "GREEN_METRICS_ADDRESS": "127.0.0.1",
        }
        stop, count = threading.Event(), [0]
        scraper = None
        if scrape_interval:
            scraper = threading.Thread(target=_scrape_loop, args=(port, scrape_interval, stop, count), daemon=True)
            scraper.start()
        done = subprocess.run([GREEN_TRAINER, "run", "--", *command], env=run_env, capture_output=True, timeout=600)
        stop.set()
        if scraper is not None:
            scraper.join()
        return done.returncode


def run_reference(
    train_args: list[str],
    *,
    wrapped: bool,
    env: dict[str, str],
    scrape_interval: float | None = None,
) -> Run:
    """One reference training run; under the wrapper, optionally scraped every scrape_interval seconds."""
    with tempfile.TemporaryDirectory() as directory:
        report_path = Path(directory) / "report.json"
        port = free_port()
        run_env = dict(env)
        command = REFERENCE + train_args
        if wrapped:
            run_env.update(
                GREEN_REPORT_PATH=str(report_path),
                GREEN_METRICS_PORT=str(port) if scrape_interval else "0",
                GREEN_METRICS_ADDRESS="127.0.0.1",
            )
            command = [GREEN_TRAINER, "run", "--", *command]
        stop, count = threading.Event(), [0]
        scraper = None
        if wrapped and scrape_interval:
            scraper = threading.Thread(target=_scrape_loop, args=(port, scrape_interval, stop, count), daemon=True)
            scraper.start()
        done = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=600)
        stop.set()
        if scraper is not None:
            scraper.join()
        if done.returncode != 0:
            raise RuntimeError(f"training failed ({done.returncode}): {done.stderr[-2000:]}")
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        report = json.loads(report_path.read_text()) if wrapped else None
        return Run(done=events[-1], report=report, scrapes=count[0])


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Any, repeat: int) -> float:
    """Seconds per call of fn over `repeat` calls."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat
