import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from green_trainer.exporter import Identity, MetricsServer, SnapshotCollector, metric_families
from green_trainer.meters import MeterName
from green_trainer.power_limit import LimitCode, PowerLimitOutcome
from green_trainer.progress_files import Progress
from green_trainer.sampler import GpuSnapshot, Snapshot

IDENTITY = Identity(
    namespace="ml", job="resnet", pod="resnet-0", region="europe-north1", container="train", node="gpu-node-1"
)
JOB = {"pod_namespace": "ml", "greentraining_job": "resnet", "pod_name": "resnet-0", "container_name": "train"}
# Labels Prometheus puts on every target: a metric carrying one would need honorLabels.
TARGET_LABELS = {"job", "namespace", "pod", "instance", "container"}
NO_PERMISSION = PowerLimitOutcome(250.0, None, False, LimitCode.NO_PERMISSION, "no permission (needs CAP_SYS_ADMIN)")

SNAPSHOT = Snapshot(
    meter=MeterName.NVML,
    energy_by_meter={MeterName.NVML: 5000.0},
    gpus=(
        GpuSnapshot(0, "GPU-a", "NVIDIA H100 80GB HBM3", MeterName.NVML, 3000.0, 310.5, 0.93, 700.0),
        GpuSnapshot(1, "GPU-b", "NVIDIA H100 80GB HBM3", MeterName.NVML, 2000.0, None, None, None),
    ),
    progress=Progress(samples=1000, steps=10, tokens=64000),
    carbon_intensity=250.0,
    emissions_grams_by_meter={MeterName.NVML: 0.347},
)


def samples_of(text):
    """{(name, frozenset(labels)): value} from an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _expose(snapshot, limit=NO_PERMISSION, source="file"):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, IDENTITY, lambda: limit, lambda: source))
    return generate_latest(registry).decode()


def key(name, **labels):
    return (name, frozenset({**JOB, **labels}.items()))


def test_every_contract_metric_is_exposed_with_its_labels():
    samples = samples_of(_expose(SNAPSHOT))
    # dcgm-exporter's names, so the series join DCGM_FI_DEV_* and the node agent's.
    gpu0 = {"Hostname": "gpu-node-1", "gpu": "0", "UUID": "GPU-a", "modelName": "NVIDIA H100 80GB HBM3"}
    gpu1 = {**gpu0, "gpu": "1", "UUID": "GPU-b"}
    assert samples[key("greentraining_gpu_power_watts", **gpu0)] == 310.5
    assert samples[key("greentraining_gpu_energy_joules_total", **gpu0, meter="nvml")] == 3000.0
    assert samples[key("greentraining_gpu_energy_joules_total", **gpu1, meter="nvml")] == 2000.0
    assert samples[key("greentraining_gpu_power_limit_watts", **gpu0)] == 700.0
    assert samples[key("greentraining_gpu_utilization_ratio", **gpu0)] == 0.93
    assert key("greentraining_gpu_power_watts", **gpu1) not in samples  # an unread value is absent, not 0
    assert samples[key("greentraining_energy_joules_total", meter="nvml")] == 5000.0
    assert samples[key("greentraining_training_samples_total")] == 1000
    assert samples[key("greentraining_training_steps_total")] == 10
    assert samples[key("greentraining_training_tokens_total")] == 64000
    assert samples[key("greentraining_energy_per_sample_joules", meter="nvml")] == 5.0
    assert samples[key("greentraining_carbon_intensity_grams_per_kwh", region="europe-north1", source="file")] == 250
    assert samples[key("greentraining_emissions_grams_total", meter="nvml")] == 0.347
    assert samples[key("greentraining_power_limit_applied", reason="NoPermission")] == 0
    assert samples[key("greentraining_power_limit_requested_watts")] == 250.0


def test_no_label_clashes_with_the_labels_prometheus_puts_on_a_target():
    for name, labels in samples_of(_expose(SNAPSHOT)):
        assert not TARGET_LABELS & {k for k, _ in labels}, name


def test_counter_types_and_help_are_declared():
    text = _expose(SNAPSHOT)
    assert "# TYPE greentraining_energy_joules_total counter" in text
    assert "# TYPE greentraining_gpu_power_watts gauge" in text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["greentraining_emissions_grams"] == "counter"
    assert families["greentraining_power_limit_applied"] == "gauge"


def test_nothing_is_invented_before_data_exists():
    empty = Snapshot(meter=MeterName.ESTIMATE, energy_by_meter={MeterName.ESTIMATE: 0.0})
    applied = PowerLimitOutcome(None, None, False, LimitCode.NOT_REQUESTED, "no limit requested")
    names = {name for name, _ in samples_of(_expose(empty, applied))}
    assert "greentraining_energy_per_sample_joules" not in names
    assert "greentraining_carbon_intensity_grams_per_kwh" not in names
    assert "greentraining_power_limit_requested_watts" not in names
    assert "greentraining_energy_joules_total" in names


def test_the_server_answers_over_http():
    collector = SnapshotCollector(lambda: SNAPSHOT, IDENTITY, lambda: NO_PERMISSION, lambda: "env")
    server = MetricsServer(collector, port=0, address="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    assert samples_of(text)[key("greentraining_training_steps_total")] == 10


def test_the_family_names_are_the_documented_contract():
    names = {family.name for family in metric_families(SNAPSHOT, IDENTITY, NO_PERMISSION, "env")}
    # prometheus_client keeps counter family names without `_total`; the samples carry it.
    assert names == {
        "greentraining_gpu_power_watts",
        "greentraining_gpu_energy_joules",
        "greentraining_gpu_power_limit_watts",
        "greentraining_gpu_utilization_ratio",
        "greentraining_energy_joules",
        "greentraining_training_samples",
        "greentraining_training_steps",
        "greentraining_training_tokens",
        "greentraining_energy_per_sample_joules",
        "greentraining_carbon_intensity_grams_per_kwh",
        "greentraining_emissions_grams",
        "greentraining_power_limit_applied",
        "greentraining_power_limit_requested_watts",
    }
