import threading

import pytest

from green_trainer.carbon import CarbonIntensity
from green_trainer.meters import EstimateMeter, GpuMeter, MeterName
from green_trainer.nvml import open_gpus
from green_trainer.progress import Reporter
from green_trainer.progress_files import Progress, ProgressReader
from green_trainer.sampler import Sampler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gpu_energy_progress_and_emissions_per_tick(tmp_path, fake_nvml_class, make_gpu):
    clock = Clock()
    nvml = fake_nvml_class([make_gpu(0, power_mw=200_000, born=0.0), make_gpu(1, power_mw=100_000, born=0.0)], clock)
    gpus, _ = open_gpus(nvml, None, None)
    intensity_file = tmp_path / "intensity.json"
    carbon = CarbonIntensity(env_value=100.0, file=intensity_file)
    reporter = Reporter(tmp_path / "progress", write_interval=0.0)
    (tmp_path / "progress").mkdir()
    sampler = Sampler(
        [GpuMeter(nvml, g, clock()) for g in gpus], None, ProgressReader(tmp_path / "progress"), carbon, clock
    )
    clock.now = 36.0  # 300 W x 36 s = 10.8 kJ = 0.003 kWh at 100 g/kWh
    reporter.add(480, 15, 0)
    first = sampler.tick()
    assert first.energy_by_meter == {MeterName.NVML: pytest.approx(10_800.0)}
    assert [g.energy_joules for g in first.gpus] == [pytest.approx(7200.0), pytest.approx(3600.0)]
    assert first.power_watts == 300.0
    assert first.progress == Progress(480, 15, 0)
    assert first.energy_per_sample_joules == pytest.approx(22.5)
    assert first.emissions_grams == pytest.approx(0.3)
    intensity_file.write_text('{"gramsPerKwh": 500.0}')
    clock.now = 72.0  # another 0.003 kWh, now at 500 g/kWh
    second = sampler.tick()
    assert second.carbon_intensity == 500.0
    assert second.emissions_grams == pytest.approx(0.3 + 1.5)
    assert sampler.snapshot() is second


def test_the_host_meter_is_used_without_gpus():
    clock = Clock()
    sampler = Sampler([], EstimateMeter(100.0, 1, 0.0), None, CarbonIntensity(None, None), clock)
    clock.now = 3.0
    snapshot = sampler.stop()  # stop without start still takes the final sample
    assert snapshot.meter is MeterName.ESTIMATE
    assert snapshot.energy_joules == pytest.approx(300.0)
    assert snapshot.emissions_grams is None
    assert snapshot.gpus == ()


def test_the_background_loop_samples_until_stopped(wait_until):
    sampler = Sampler([], EstimateMeter(100.0, 1, 0.0), None, CarbonIntensity(None, None))
    sampler.start(0.005)
    wait_until(lambda: sampler.snapshot().ticks >= 3, timeout=10)
    final = sampler.stop()
    assert final.ticks >= 4
    assert not any(t.name == "green-sampler" for t in threading.enumerate())


def test_a_sampler_needs_a_meter():
    with pytest.raises(ValueError, match="meter"):
        Sampler([], None, None, CarbonIntensity(None, None))
