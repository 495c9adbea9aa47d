import pytest

from green_trainer.devices import Enumerated, count_listed, select_devices

FOUR = [Enumerated(i, f"GPU-{i}aaa-{i}bbb") for i in range(4)]


@pytest.mark.parametrize("runtime", [None, "", "all", "void", "ALL"])
def test_no_restriction_means_every_gpu_nvml_sees(runtime):
    assert select_devices(runtime, None, FOUR).indices == (0, 1, 2, 3)


def test_none_means_no_gpu():
    assert select_devices("none", None, FOUR).indices == ()


def test_uuids_select_among_all_gpus_of_a_privileged_container():
    assert select_devices("GPU-3aaa-3bbb,GPU-1aaa-1bbb", None, FOUR).indices == (3, 1)


def test_host_indices_select_when_the_container_sees_every_gpu():
    assert select_devices("1,3", None, FOUR).indices == (1, 3)


def test_host_indices_are_not_reapplied_when_the_runtime_already_scoped_the_view():
    # The device plugin gave host GPU 3; inside, NVML sees only it, as index 0.
    inside = [Enumerated(0, "GPU-only")]
    assert select_devices("3", None, inside).indices == (0,)
    assert select_devices("2,3", None, [Enumerated(0, "GPU-a"), Enumerated(1, "GPU-b")]).indices == (0, 1)


def test_unknown_uuids_and_mig_devices_are_reported():
    selection = select_devices("GPU-nope,MIG-123,GPU-2aaa-2bbb", None, FOUR)
    assert selection.indices == (2,)
    assert any("GPU-nope" in note for note in selection.notes)
    assert any("MIG-123" in note for note in selection.notes)


def test_cuda_visible_devices_counts_within_what_the_runtime_left():
    assert select_devices("GPU-1aaa-1bbb,GPU-3aaa-3bbb", "1", FOUR).indices == (3,)


def test_cuda_visible_devices_accepts_unique_uuid_prefixes():
    assert select_devices(None, "GPU-2aaa", FOUR).indices == (2,)


def test_cuda_visible_devices_stops_at_the_first_invalid_entry_like_cuda():
    selection = select_devices(None, "2,7,0", FOUR)
    assert selection.indices == (2,)
    assert "'7'" in selection.notes[0]


@pytest.mark.parametrize("cuda", ["", "-1"])
def test_cuda_visible_devices_empty_or_negative_hides_every_gpu(cuda):
    assert select_devices(None, cuda, FOUR).indices == ()


@pytest.mark.parametrize(
    ("value", "count"),
    [(None, 0), ("all", 0), ("none", 0), ("void", 0), ("0", 1), ("GPU-a,GPU-b", 2), ("0,1,2,", 3)],
)
def test_count_listed(value, count):
    assert count_listed(value) == count
