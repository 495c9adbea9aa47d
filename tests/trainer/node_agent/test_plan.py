"""The limit plan per poll: set annotated pods' GPUs, restore what the state file lists when no live pod wants it."""

from __future__ import annotations

from green_trainer.node_agent.holdings import Holder, Holdings, PodKey
from green_trainer.node_agent.plan import Restore, SetLimit, StateEntry, plan_limits
from green_trainer.node_agent.pods import PodInfo, parse_power_limit, pod_info

A = PodKey("ml", "a")
B = PodKey("ml", "b")


def info(key: PodKey, limit: str | None, terminal: bool = False) -> PodInfo:
    return PodInfo(key, f"uid-{key.name}", limit, "job", terminal)


def holdings(**gpus: PodKey) -> Holdings:
    return Holdings({uuid: Holder(pod, "train") for uuid, pod in gpus.items()}, ())


def entry(uuid: str, pod: PodKey) -> StateEntry:
    return StateEntry(uuid, 700_000, 250_000, str(pod), f"uid-{pod.name}")


def test_an_annotated_pod_gets_its_limit_on_exactly_its_gpus() -> None:
    plan = plan_limits(holdings(g0=A, g1=A, g2=B), {A: info(A, "250"), B: info(B, None)}, {})
    assert plan.actions == (
        SetLimit("g0", 250.0, Holder(A, "train"), "uid-a"),
        SetLimit("g1", 250.0, Holder(A, "train"), "uid-a"),
    )


def test_gpus_in_the_state_file_are_restored_when_their_pod_ends_or_drops_its_limit() -> None:
    state = {"g0": entry("g0", A), "g1": entry("g1", B), "g2": entry("g2", A)}
    pods = {A: info(A, "250", terminal=True), B: info(B, "")}
    plan = plan_limits(holdings(g0=A, g1=B), pods, state)
    assert [(type(a), a.uuid) for a in plan.actions] == [(Restore, "g0"), (Restore, "g1"), (Restore, "g2")]
    restores = [a for a in plan.actions if isinstance(a, Restore)]
    assert "asks for no limit" in restores[1].why
    assert "no longer holds it" in restores[2].why


def test_nothing_is_decided_before_the_pod_watch_has_synced() -> None:
    plan = plan_limits(holdings(g0=A), None, {"g1": entry("g1", B)})
    assert plan.actions == ()
    assert plan.bad == ()


def test_garbage_annotations_are_reported_and_set_nothing() -> None:
    plan = plan_limits(holdings(g0=A), {A: info(A, "fast please")}, {})
    assert plan.actions == ()
    (bad,) = plan.bad
    assert bad.pod == A
    assert "greentraining.io/gpu-power-limit-watts='fast please'" in bad.message


def test_annotation_parsing() -> None:
    assert parse_power_limit(None).watts is None
    assert not parse_power_limit(None).error
    assert parse_power_limit(" ").watts is None
    assert not parse_power_limit(" ").error
    assert parse_power_limit("250").watts == 250.0
    assert parse_power_limit("312.5").watts == 312.5
    for garbage in ("-5", "0", "nan", "inf", "250W", "1e9"):
        assert parse_power_limit(garbage).error, garbage


def test_pod_info_reads_the_annotation_job_label_uid_and_phase() -> None:
    pod = {
        "metadata": {
            "namespace": "ml",
            "name": "a",
            "uid": "u1",
            "annotations": {"greentraining.io/gpu-power-limit-watts": "300"},
            "labels": {"greentraining.io/job": "resnet"},
        },
        "status": {"phase": "Succeeded"},
    }
    assert pod_info(pod) == PodInfo(A, "u1", "300", "resnet", terminal=True)
