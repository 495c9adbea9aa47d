"""CPU benchmark: what the green-trainer wrapper costs a training loop on this machine.

    .venv/bin/python benchmarks/trainer_overhead.py [--repeats 3] [--steps 5000] [--idle-seconds 5]

Prints (1) the cost of one progress.report() call, (2) one sampler tick and one /metrics render,
(3) the CPU the wrapper itself uses around an idle child, and (4) the reference training's step
throughput bare vs under the wrapper at 1 s and 0.01 s sampling, scraped every 0.1 s (150x more
often than a 15 s Prometheus interval). On a shared 2-core machine (4) is noisy; (3) is not.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from green_trainer.carbon import CarbonIntensity
from green_trainer.exporter import Identity, SnapshotCollector
from green_trainer.meters import EstimateMeter, MeterName, RaplMeter
from green_trainer.power_limit import LimitCode, PowerLimitOutcome
from green_trainer.progress import Reporter
from green_trainer.progress_files import Progress, ProgressReader
from green_trainer.rapl import RaplCounter, discover_zones
from green_trainer.sampler import GpuSnapshot, Sampler, Snapshot

# Run as a script (python benchmarks/<name>.py): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.trainer_common import base_env, median, run_command, run_reference, timed


def micro() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        in_memory = Reporter(None)
        to_file = Reporter(root / "progress")
        (root / "progress").mkdir()
        calls = 200_000
        memory_us = timed(lambda: in_memory.add(64, 1, 0), calls) * 1e6
        file_us = timed(lambda: to_file.add(64, 1, 0), calls) * 1e6
        write_us = timed(to_file._write, 2000) * 1e6
        print(f"progress.report, in memory:             {memory_us:7.2f} us/call")
        print(f"progress.report, to file (0.2 s write): {file_us:7.2f} us/call")
        print(f"progress file write (every call):       {write_us:7.2f} us/call")

        for i in range(2):
            zone = root / "powercap" / f"intel-rapl:{i}"
            zone.mkdir(parents=True)
            (zone / "name").write_text(f"package-{i}\n")
            (zone / "energy_uj").write_text("1000\n")
            (zone / "max_energy_range_uj").write_text("262143328850\n")
        reader = ProgressReader(root / "progress")
        carbon = CarbonIntensity(250.0, root / "intensity.json")
        estimate = Sampler([], EstimateMeter(300.0, 1, 0.0), reader, carbon)
        rapl = Sampler([], RaplMeter(RaplCounter(discover_zones(root / "powercap"))), reader, carbon)
        print(f"sampler tick, estimate meter:           {timed(estimate.tick, 5000) * 1e6:7.2f} us/tick")
        print(f"sampler tick, RAPL (2 packages):        {timed(rapl.tick, 5000) * 1e6:7.2f} us/tick")

    gpus = tuple(
        GpuSnapshot(
            i, f"GPU-{i:08x}-aaaa-bbbb-cccc-dddd", "NVIDIA H100 80GB HBM3", MeterName.NVML, 1e6, 300.0, 0.9, 700
        )
        for i in range(8)
    )
    snapshot = Snapshot(
        MeterName.NVML,
        {MeterName.NVML: 8e6},
        gpus,
        2400.0,
        Progress(10**6, 10**4, 10**8),
        250.0,
        {MeterName.NVML: 55.5},
    )
    registry = CollectorRegistry(auto_describe=False)
    limit = PowerLimitOutcome(250.0, 250.0, True, LimitCode.APPLIED, "")
    registry.register(
        SnapshotCollector(lambda: snapshot, Identity("ml", "job", "pod", "eu"), lambda: limit, lambda: "env")
    )
    size = len(generate_latest(registry))
    render_us = timed(lambda: generate_latest(registry), 2000) * 1e6
    print(f"/metrics render, 8 GPUs ({size} bytes):    {render_us:7.1f} us/scrape")


def _children_cpu(command: list[str], env: dict[str, str], scrape: float | None) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run_command(command, env=env, scrape_interval=scrape)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def wrapper_cpu(seconds: float) -> None:
    """CPU the wrapper itself burns around an idle child: immune to the noise of a shared machine.
    A run around `true` measures start-up and exit; the difference is the steady-state cost."""
    print(f"\nwrapper CPU around an idle child (sleep {seconds:.0f} s minus a run around `true`):")
    for interval, scrape in (("1.0", None), ("1.0", 0.1), ("0.01", None), ("0.01", 0.1)):
        env = base_env(GREEN_SAMPLE_INTERVAL_SECONDS=interval)
        fixed_cpu, fixed_wall = _children_cpu(["true"], env, scrape)
        cpu, wall = _children_cpu(["sleep", str(seconds)], env, scrape)
        share = (cpu - fixed_cpu) / (wall - fixed_wall)
        label = f"sampling {interval} s" + (f", scraped every {scrape} s" if scrape else ", no scrapes")
        print(f"  {label:38s} {share * 100:5.2f}% of one core (start-up + exit: {fixed_cpu * 1000:.0f} ms CPU)")


def macro(repeats: int, steps: int) -> None:
    train = ["--threads", "1", "--epochs", "100000", "--patience", "0", "--max-steps", str(steps)]
    # name: (under the wrapper?, GREEN_SAMPLE_INTERVAL_SECONDS, scrape interval)
    configs: dict[str, tuple[bool, str, float | None]] = {
        "bare (no wrapper)": (False, "", None),
        "wrapper, 1 s sampling, scraped 10/s": (True, "1.0", 0.1),
        "wrapper, 0.01 s sampling, scraped 10/s": (True, "0.01", 0.1),
    }
    run_reference(train, wrapped=False, env=base_env(OMP_NUM_THREADS="1"))  # warm-up: file caches, torch import
    results: dict[str, list[float]] = {name: [] for name in configs}
    scrapes: dict[str, int] = dict.fromkeys(configs, 0)
    for _ in range(repeats):  # interleaved, so drift in machine load hits every configuration alike
        for name, (wrapped, interval, scrape) in configs.items():
            env = base_env(OMP_NUM_THREADS="1", GREEN_SAMPLE_INTERVAL_SECONDS=interval or "1.0")
            run = run_reference(train, wrapped=wrapped, env=env, scrape_interval=scrape)
            results[name].append(run.steps_per_second)
            scrapes[name] += run.scrapes
    bare = median(results["bare (no wrapper)"])
    print(f"\nreference training, {steps} steps, 1 torch thread, median of {repeats} (2-core machine):")
    for name, values in results.items():
        value = median(values)
        extra = f", {scrapes[name]} scrapes" if scrapes[name] else ""
        print(
            f"  {name:40s} {value:8.1f} steps/s  ({(value / bare - 1) * 100:+5.1f}% vs bare; "
            f"runs: {', '.join(f'{v:.0f}' for v in values)}{extra})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    micro()
    wrapper_cpu(args.idle_seconds)
    macro(args.repeats, args.steps)


if __name__ == "__main__":
    main()
