"""CPU benchmark: what a pause costs the reference trainer (the `resumeOverhead` to put in a spec).

    .venv/bin/python benchmarks/trainer_checkpoint.py [--hidden 64,1024,4096] [--repeats 5]

For the reference model at several widths it prints the checkpoint's size, the time to save it
(torch.save to a temporary file, then an atomic rename, as on SIGTERM) and to load it, and the whole
resume as a pod sees it: a fresh `python -m green_trainer.reference_train` process that loads the
latest checkpoint and reaches its first step (interpreter and torch import included). Median of
`--repeats`. On a shared 2-core machine the figures are noisy; a GPU node's disk and a network
volume differ again, so measure there before trusting a number in production.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from green_trainer.reference_train import (
    State,
    checkpoint_in,
    load_checkpoint,
    make_model,
    save_checkpoint,
)


def measure(hidden: int, repeats: int, directory: Path) -> tuple[float, float, float, float]:
    args = argparse.Namespace(features=32, hidden=hidden, layers=2, classes=4)
    model = make_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(8, 32)).sum().backward()  # type: ignore[no-untyped-call]
    optimizer.step()  # AdamW's state exists, as in a real checkpoint
    path = checkpoint_in(directory, 1)
    saves, loads = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        save_checkpoint(path, model, optimizer, State(step=1))
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_checkpoint(path, model, optimizer, torch.device("cpu"))
        loads.append(time.perf_counter() - t0)
    size_mb = path.stat().st_size / 1e6
    resumes = []
    for _ in range(max(repeats // 2, 1)):
        command = [
            sys.executable, "-m", "green_trainer.reference_train", "--checkpoint-dir", str(directory),
            "--hidden", str(hidden), "--threads", "1", "--max-steps", "2", "--log-every", "1",
        ]  # fmt: skip
        t0 = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if json.loads(line).get("event") == "step":
                    resumes.append(time.perf_counter() - t0)
                    break
            proc.kill()
    return size_mb, statistics.median(saves), statistics.median(loads), statistics.median(resumes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", default="64,1024,4096")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'hidden':>7} {'params':>10} {'size MB':>8} {'save s':>8} {'load s':>8} {'resume s':>9}")
    for hidden in (int(h) for h in args.hidden.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            size, save, load, resume = measure(hidden, args.repeats, Path(tmp))
        params = sum(
            p.numel()
            for p in make_model(argparse.Namespace(features=32, hidden=hidden, layers=2, classes=4)).parameters()
        )
        print(f"{hidden:>7} {params:>10,} {size:>8.2f} {save:>8.4f} {load:>8.4f} {resume:>9.2f}")


if __name__ == "__main__":
    main()
