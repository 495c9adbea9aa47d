"""`green-trainer run`: wires NVML, the power limit, the meters, the exporter and the child together."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from green_trainer.carbon import CarbonIntensity
from green_trainer.child import ChildResult, ChildUser, Supervisor, resolve_user, signals_blocked
from green_trainer.devices import count_listed
from green_trainer.exporter import Identity, MetricsServer, SnapshotCollector
from green_trainer.meters import EnergyMeter, EstimateMeter, GpuMeter, RaplMeter
from green_trainer.nvml import Gpu, NvmlApi, load_pynvml, open_gpus
from green_trainer.power_limit import LimitCode, PowerLimiter, PowerLimitOutcome, not_applied
from green_trainer.progress_files import PROGRESS_DIR_ENV, ProgressReader
from green_trainer.rapl import RaplCounter, discover_zones
from green_trainer.report import build_report, encode_report, write_report
from green_trainer.sampler import Sampler
from green_trainer.settings import Settings

log = logging.getLogger(__name__)


def _open_gpus(nvml: NvmlApi, settings: Settings) -> list[Gpu]:
    try:
        gpus, selection = open_gpus(nvml, settings.nvidia_visible_devices, settings.cuda_visible_devices)
    except nvml.NVMLError as err:
        log.error("NVML could not list the GPUs (%s): no GPU metering", err)
        return []
    for note in selection.notes:
        log.warning("%s", note)
    log.info("GPUs of this container: %s", ", ".join(f"{g.index} {g.model} {g.uuid}" for g in gpus) or "none")
    return gpus


def host_meter(settings: Settings, nvml_loaded: bool, now: float) -> EnergyMeter:
    """The meter when no GPU can be metered: RAPL on CPU-only pods, else the labelled estimate."""
    expected_gpus = 0 if nvml_loaded else count_listed(settings.nvidia_visible_devices)
    if expected_gpus == 0:
        zones = discover_zones(settings.powercap_root)
        if zones:
            names = ", ".join(f"{z.path.name} ({z.name})" for z in zones)
            log.info("metering CPU energy with RAPL: %s", names)
            return RaplMeter(RaplCounter(zones))
    devices = max(expected_gpus, 1)
    log.warning(
        "no energy meter readable (no NVML, no RAPL under %s): reporting an ESTIMATE of %g W x %d device(s);"
        " set GREEN_ESTIMATED_WATTS_PER_DEVICE to tune it",
        settings.powercap_root,
        settings.estimated_watts_per_device,
        devices,
    )
    return EstimateMeter(settings.estimated_watts_per_device, devices, now)


def resolve_child_user(settings: Settings) -> ChildUser | None:
    """Whom to run the training as (root wrappers only); ValueError for a user the image lacks."""
    if not settings.child_user:
        return None
    user = resolve_user(settings.child_user)
    if os.geteuid() == 0:
        return user
    if os.geteuid() != user.uid:
        log.warning("GREEN_CHILD_USER=%s ignored: only root can switch users", settings.child_user)
    return None


def _limit(
    settings: Settings, nvml: NvmlApi | None, gpus: list[Gpu], stack: ExitStack
) -> Callable[[], PowerLimitOutcome]:
    """Apply the requested limit (restored when the stack closes); returns the current outcome's getter."""
    requested = settings.power_limit_watts
    if nvml is not None:
        limiter = PowerLimiter(nvml, gpus)
        stack.callback(limiter.restore)  # idempotent; also covers a failure before the training starts
        limiter.apply(requested)
        return lambda: limiter.outcome
    if requested is None:
        outcome = not_applied(None, LimitCode.NOT_REQUESTED, "no limit requested")
    else:
        outcome = not_applied(requested, LimitCode.NVML_UNAVAILABLE, "NVML not available in this container")
        log.warning("GPU power limit of %.0f W not applied: %s", requested, outcome.reason)
    return lambda: outcome


def _serve_metrics(
    settings: Settings,
    sampler: Sampler,
    limit: Callable[[], PowerLimitOutcome],
    carbon: CarbonIntensity,
    stack: ExitStack,
) -> None:
    identity = Identity(
        settings.job_namespace,
        settings.job_name,
        settings.pod_name,
        settings.region,
        container=settings.container_name,
        node=settings.node_name,
    )
    collector = SnapshotCollector(sampler.snapshot, identity, limit, lambda: carbon.source)
    try:
        with signals_blocked():
            server = MetricsServer(collector, settings.metrics_port, settings.metrics_address)
    except OSError as err:
        log.error("cannot serve metrics on port %d (%s); training goes on", settings.metrics_port, err)
        return
    stack.callback(server.close)
    log.info("serving metrics on %s:%d/metrics", settings.metrics_address, server.port)


def run(
    settings: Settings,
    command: Sequence[str],
    env: Mapping[str, str],
    user: ChildUser | None = None,
    load_nvml: Callable[[], NvmlApi | None] = load_pynvml,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run the command under metering; returns its exit status (the wrapper's own exit status)."""
    start = datetime.now(UTC)
    with ExitStack() as stack, ExitStack() as resources:
        progress_dir = Path(tempfile.mkdtemp(prefix="green-progress-"))
        stack.callback(shutil.rmtree, progress_dir, True)
        if user is not None:
            os.chown(progress_dir, user.uid, user.gid)
        supervisor = Supervisor(
            command, {**env, PROGRESS_DIR_ENV: str(progress_dir)}, settings.child_grace_seconds, user
        )
        supervisor.install_signal_handlers()
        stack.callback(supervisor.restore_signal_handlers)

        nvml = None if settings.disable_nvml else load_nvml()
        if nvml is not None:
            resources.callback(nvml.nvmlShutdown)
        gpus = _open_gpus(nvml, settings) if nvml is not None else []
        limit = _limit(settings, nvml, gpus, resources)

        now = clock()
        gpu_meters = [GpuMeter(nvml, gpu, now) for gpu in gpus] if nvml is not None else []
        carbon = CarbonIntensity(settings.carbon_intensity, settings.carbon_intensity_file)
        host = None if gpu_meters else host_meter(settings, nvml is not None, now)
        sampler = Sampler(gpu_meters, host, ProgressReader(progress_dir), carbon, clock)
        sampler.tick()
        with signals_blocked():
            sampler.start(settings.sample_interval_seconds)
        if settings.metrics_port:
            _serve_metrics(settings, sampler, limit, carbon, resources)

        result = ChildResult(1, None)
        try:
            result = supervisor.run()
        finally:
            snapshot = sampler.stop()
            resources.close()  # restores the limit (so the report can say so), stops the exporter and NVML
            report = build_report(
                snapshot, limit(), start, datetime.now(UTC), result.exit_code, supervisor.terminated_by
            )
            text = encode_report(report)
            log.info("report: %s", text)
            write_report(settings.report_path, text)
    return result.exit_code
