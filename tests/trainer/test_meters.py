import pytest

from green_trainer.meters import EstimateMeter, GpuMeter, MeterName, trapezoid_joules, weakest
from green_trainer.nvml import open_gpus


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _meter(fake_nvml_class, gpu, clock):
    nvml = fake_nvml_class([gpu], clock=clock)
    (opened,), _ = open_gpus(nvml, None, None)
    return GpuMeter(nvml, opened, clock())


def test_the_energy_counter_gives_joules_since_start(fake_nvml_class, make_gpu):
    clock = Clock()
    gpu = make_gpu(0, power_mw=250_000, born=clock.now)
    meter = _meter(fake_nvml_class, gpu, clock)
    assert meter.meter is MeterName.NVML
    clock.now += 4.0
    meter.sample(clock.now)
    assert meter.energy_joules == pytest.approx(1000.0)  # 250 W x 4 s from the mJ counter
    assert meter.power_watts == 250.0
    assert meter.utilization_ratio == 0.5
    assert meter.power_limit_watts == 700.0


def test_without_a_counter_power_samples_are_integrated(fake_nvml_class, make_gpu):
    clock = Clock()
    gpu = make_gpu(0, power_mw=100_000, has_energy_counter=False)
    meter = _meter(fake_nvml_class, gpu, clock)
    assert meter.meter is MeterName.NVML_POWER_INTEGRATION
    clock.now += 1.0
    gpu.power_mw = 300_000
    meter.sample(clock.now)
    assert meter.energy_joules == pytest.approx(200.0)  # (100 + 300) / 2 W x 1 s
    # A failed read loses resolution, not energy: the next good sample spans the gap.
    gpu.failing_reads.add("power")
    clock.now += 1.0
    meter.sample(clock.now)
    gpu.failing_reads.clear()
    clock.now += 1.0
    meter.sample(clock.now)
    assert meter.energy_joules == pytest.approx(200.0 + 300.0 * 2)


def test_failed_auxiliary_reads_leave_gaps_not_errors(fake_nvml_class, make_gpu):
    clock = Clock()
    gpu = make_gpu(0, failing_reads={"utilization", "limit"})
    meter = _meter(fake_nvml_class, gpu, clock)
    clock.now += 1
    meter.sample(clock.now)
    assert meter.utilization_ratio is None
    assert meter.power_limit_watts is None
    assert meter.energy_joules > 0


def test_estimate_is_watts_times_devices_times_time():
    meter = EstimateMeter(watts_per_device=300.0, devices=2, now=10.0)
    meter.sample(15.0)
    assert meter.meter is MeterName.ESTIMATE
    assert meter.energy_joules == pytest.approx(3000.0)
    assert EstimateMeter(300.0, devices=0, now=0.0).devices == 1


def test_trapezoid_and_weakest():
    assert trapezoid_joules(100.0, 200.0, 2.0) == 300.0
    assert trapezoid_joules(100.0, 200.0, -1.0) == 0.0
    assert weakest([MeterName.NVML, MeterName.NVML_POWER_INTEGRATION]) is MeterName.NVML_POWER_INTEGRATION
    assert weakest([MeterName.NVML]) is MeterName.NVML
    assert weakest([MeterName.RAPL, MeterName.ESTIMATE]) is MeterName.ESTIMATE
