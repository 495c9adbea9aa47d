"""GPU benchmark for the green-trainer wrapper (run it on a GPU machine; about 1-2 minutes).

    python benchmarks/trainer_gpu.py            # needs an NVIDIA GPU and the driver
    python benchmarks/trainer_gpu.py --allow-cpu  # dry run of the same flow on CPU (no NVML figures)

READ-ONLY on the GPU: it never sets power limits, clocks, or persistence mode. Every GREEN_* variable
is removed from the wrapper's environment (so no limit is requested), NVML is reached here only
through a proxy that allows reads, and a report showing any limit activity aborts the run.

Prints:
  1. energy of GPU 0 over a bf16 training run: the NVML total-energy counter vs 100 Hz power samples
     integrated by this script, and the wrapper's own figure from its report;
  2. exporter/sampler overhead: step throughput bare vs under the wrapper (1 s and 0.01 s sampling);
  3. bf16 autocast vs fp32: marginal energy per sample (start-up cancelled out) and samples per second.
The step counts are sized for an H100 (~10 s of training per run); --scale adjusts them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Run as a script (python benchmarks/<name>.py): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.trainer_common import Run, base_env, median, run_reference

READS = {
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlSystemGetDriverVersion",
    "NVMLError",
}


class ReadOnlyNvml:
    """pynvml with only the reads above reachable."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name not in READS:
            raise AttributeError(f"{name} is not allowed: this benchmark is read-only on the GPU")
        return getattr(self._module, name)


def open_nvml() -> ReadOnlyNvml | None:
    try:
        import pynvml
    except ImportError:
        return None
    nvml = ReadOnlyNvml(pynvml)
    try:
        nvml.nvmlInit()
    except Exception as err:  # NVMLError subclasses: no driver, no library
        print(f"NVML not available: {err}")
        return None
    if nvml.nvmlDeviceGetCount() == 0:
        return None
    return nvml


class PowerIntegrator:
    """Integrates GPU power at ~100 Hz in a thread and reads the energy counter at both ends."""

    def __init__(self, nvml: ReadOnlyNvml, index: int = 0, interval: float = 0.01) -> None:
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.interval = interval
        self.joules = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PowerIntegrator:
        self.counter_start_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        self._thread.start()
        return self

    def _loop(self) -> None:
        last_time, last_watts = time.monotonic(), self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000
        while not self._stop.wait(self.interval):
            now, watts = time.monotonic(), self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000
            self.joules += (last_watts + watts) / 2 * (now - last_time)
            self.samples += 1
            last_time, last_watts = now, watts

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.counter_joules = (
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.counter_start_mj
        ) / 1000


def check_read_only(report: dict[str, Any] | None) -> None:
    if report is None:
        return
    limit = report["powerLimit"]
    if limit["code"] != "NotRequested" or limit["applied"]:
        sys.exit(f"ABORT: the wrapper reports power-limit activity ({limit}); this benchmark must be read-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allow-cpu", action="store_true", help="dry-run the flow on CPU without a GPU")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the throughput comparison")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run's step count")
    args = parser.parse_args()

    nvml = open_nvml()
    if nvml is None and not args.allow_cpu:
        sys.exit("no NVIDIA GPU visible: nothing to measure (use --allow-cpu for a dry run)")
    if nvml is not None:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        print(
            f"GPU 0: {nvml.nvmlDeviceGetName(handle)}, driver {nvml.nvmlSystemGetDriverVersion()}, "
            f"power limit now {nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000:.0f} W (left unchanged)"
        )
        # ~1.4 GFLOP per sample per step: matmul-bound, so precision shows in energy.
        model = ["--device", "cuda", "--features", "1024", "--hidden", "8192", "--layers", "4", "--classes", "1000"]
        model += ["--batch-size", "4096", "--samples", "65536"]
        steps = {"bf16": 500, "fp32": 50, "overhead": 500}
    else:
        print("dry run on CPU: NVML figures are skipped")
        model = ["--device", "cpu", "--threads", "1", "--hidden", "256", "--batch-size", "256", "--samples", "16384"]
        steps = {"bf16": 100, "fp32": 100, "overhead": 300}
    steps = {k: max(1, round(v * args.scale)) for k, v in steps.items()}
    common = [*model, "--epochs", "100000", "--patience", "0"]
    env = base_env(CUDA_VISIBLE_DEVICES="0")
    wrapped_env = {**env, "GREEN_SAMPLE_INTERVAL_SECONDS": "0.01"}

    # 1 and 3. Each precision runs N and 2N steps under the wrapper; the difference removes start-up
    # (interpreter, CUDA context, data) and leaves the marginal energy per trained sample. The 2N bf16
    # run is also metered by this script: counter vs integrated power.
    runs: dict[tuple[str, int], Run] = {}
    comparison: PowerIntegrator | None = None
    for precision in ("bf16", "fp32"):
        for multiple in (1, 2):
            train = [*common, "--precision", precision, "--max-steps", str(steps[precision] * multiple)]
            if nvml is not None and (precision, multiple) == ("bf16", 2):
                with PowerIntegrator(nvml) as comparison:
                    run = run_reference(train, wrapped=True, env=wrapped_env)
            else:
                run = run_reference(train, wrapped=True, env=wrapped_env)
            check_read_only(run.report)
            runs[(precision, multiple)] = run

    if comparison is not None:
        difference = (comparison.joules / comparison.counter_joules - 1) * 100
        report = runs[("bf16", 2)].report or {}
        print("\n1. GPU 0 energy over one bf16 run (this script's window, which spans the wrapper's):")
        print(f"   NVML total-energy counter:      {comparison.counter_joules:10.1f} J")
        print(
            f"   100 Hz power, integrated:       {comparison.joules:10.1f} J "
            f"({difference:+.2f}% vs counter, {comparison.samples} samples)"
        )
        print(
            f"   wrapper report (meter {report.get('meter')}): {report.get('energyJoules', 0):10.1f} J "
            f"over {report.get('durationSeconds')} s"
        )

    # 2. Overhead on step throughput.
    overhead_train = [*common, "--precision", "bf16", "--max-steps", str(steps["overhead"])]
    configs: dict[str, tuple[bool, dict[str, str], float | None]] = {
        "bare": (False, env, None),
        "wrapper 1 s, scraped 1/s": (True, {**env, "GREEN_SAMPLE_INTERVAL_SECONDS": "1.0"}, 1.0),
        "wrapper 0.01 s, scraped 1/s": (True, wrapped_env, 1.0),
    }
    results: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, (wrapped, config_env, scrape) in configs.items():
            run = run_reference(overhead_train, wrapped=wrapped, env=config_env, scrape_interval=scrape)
            check_read_only(run.report)
            results[name].append(run.steps_per_second)
    bare = median(results["bare"])
    print(f"\n2. step throughput, {steps['overhead']} bf16 steps, median of {args.repeats}:")
    for name, values in results.items():
        print(f"   {name:30s} {median(values):9.2f} steps/s ({(median(values) / bare - 1) * 100:+.1f}% vs bare)")

    print("\n3. precision: marginal energy per sample, (E(2N) - E(N)) / (samples(2N) - samples(N)):")
    per_sample: dict[str, float] = {}
    for precision in ("bf16", "fp32"):
        short, long = runs[(precision, 1)], runs[(precision, 2)]
        assert short.report is not None
        assert long.report is not None
        joules = long.report["energyJoules"] - short.report["energyJoules"]
        samples = long.report["samples"] - short.report["samples"]
        per_sample[precision] = joules / samples
        batch = int(model[model.index("--batch-size") + 1])
        print(
            f"   {precision}: {per_sample[precision] * 1000:9.3f} mJ/sample (meter {long.report['meter']}), "
            f"{long.steps_per_second * batch:10.0f} samples/s, N = {steps[precision]} steps; "
            f"whole-run {long.report['energyJoules'] / long.report['samples'] * 1000:.3f} mJ/sample"
        )
    print(f"   fp32 / bf16 energy per sample: {per_sample['fp32'] / per_sample['bf16']:.2f}x")
    if nvml is None:
        print("   (dry run: estimate meter on tiny runs, start-up noise dominates; these figures mean nothing)")
    if nvml is not None:
        nvml.nvmlShutdown()


if __name__ == "__main__":
    main()
