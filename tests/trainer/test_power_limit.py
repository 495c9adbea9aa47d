import logging

import pytest

from green_trainer.nvml import open_gpus
from green_trainer.power_limit import NO_PERMISSION_REASON, LimitCode, PowerLimiter, plan_limit


@pytest.mark.parametrize(
    ("requested", "low", "high", "target", "clamped"),
    [
        (250.0, 200_000, 700_000, 250_000, False),
        (150.0, 200_000, 700_000, 200_000, True),
        (900.0, 200_000, 700_000, 700_000, True),
        (250.4, 100_000, 300_000, 250_400, False),
        (200.0, 200_000, 700_000, 200_000, False),
    ],
)
def test_plan_limit_clamps_to_the_allowed_range(requested, low, high, target, clamped):
    plan = plan_limit(requested, low, high)
    assert (plan.target_milliwatts, plan.clamped) == (target, clamped)


def _limiter(fake_nvml_class, gpus):
    nvml = fake_nvml_class(gpus)
    opened, _ = open_gpus(nvml, None, None)
    return PowerLimiter(nvml, opened)


def test_applies_in_milliwatts_and_restores_the_previous_limit(fake_nvml_class, make_gpu):
    gpus = [make_gpu(0, limit_mw=700_000), make_gpu(1, limit_mw=650_000)]
    limiter = _limiter(fake_nvml_class, gpus)
    outcome = limiter.apply(300.0)
    assert outcome.applied
    assert outcome.code is LimitCode.APPLIED
    assert outcome.reason == ""
    assert outcome.applied_watts == 300.0
    assert [g.limit_mw for g in gpus] == [300_000, 300_000]
    assert limiter.restore() is True
    assert [g.limit_mw for g in gpus] == [700_000, 650_000]
    assert limiter.outcome.restored is True


def test_a_request_outside_the_range_is_clamped_and_says_so(fake_nvml_class, make_gpu):
    gpus = [make_gpu(0)]
    outcome = _limiter(fake_nvml_class, gpus).apply(120.0)
    assert outcome.applied
    assert outcome.code is LimitCode.CLAMPED
    assert outcome.applied_watts == 200.0
    assert gpus[0].set_calls == [200_000]
    assert "200-700 W" in outcome.reason


def test_no_permission_is_reported_and_nothing_changes(fake_nvml_class, make_gpu, fake_nvml_class_errors, caplog):
    gpus = [make_gpu(0, set_error=fake_nvml_class_errors.NoPermission)]
    limiter = _limiter(fake_nvml_class, gpus)
    with caplog.at_level(logging.WARNING):
        outcome = limiter.apply(250.0)
    assert not outcome.applied
    assert outcome.code is LimitCode.NO_PERMISSION
    assert outcome.reason == NO_PERMISSION_REASON == "no permission (needs CAP_SYS_ADMIN)"
    assert outcome.requested_watts == 250.0
    assert outcome.applied_watts is None
    assert gpus[0].limit_mw == 700_000
    assert NO_PERMISSION_REASON in caplog.text
    assert limiter.restore() is True
    assert gpus[0].set_calls == []


def test_not_supported_and_other_errors_have_their_own_codes(fake_nvml_class, make_gpu, fake_nvml_class_errors):
    unsupported = _limiter(fake_nvml_class, [make_gpu(0, set_error=fake_nvml_class_errors.NotSupported)])
    assert unsupported.apply(250.0).code is LimitCode.NOT_SUPPORTED
    broken = _limiter(fake_nvml_class, [make_gpu(0, set_error=fake_nvml_class_errors.Error)])
    outcome = broken.apply(250.0)
    assert outcome.code is LimitCode.NVML_ERROR
    assert "GPU 0" in outcome.reason


def test_a_failure_on_one_gpu_rolls_back_the_others(fake_nvml_class, make_gpu, fake_nvml_class_errors):
    gpus = [make_gpu(0, limit_mw=500_000), make_gpu(1, set_error=fake_nvml_class_errors.NoPermission)]
    outcome = _limiter(fake_nvml_class, gpus).apply(300.0)
    assert not outcome.applied
    assert outcome.code is LimitCode.NO_PERMISSION
    assert gpus[0].set_calls == [300_000, 500_000]
    assert gpus[0].limit_mw == 500_000


def test_a_failed_restore_is_reported(fake_nvml_class, make_gpu, fake_nvml_class_errors, caplog):
    gpus = [make_gpu(0, restore_error=fake_nvml_class_errors.NoPermission)]
    limiter = _limiter(fake_nvml_class, gpus)
    assert limiter.apply(300.0).applied
    with caplog.at_level(logging.ERROR):
        assert limiter.restore() is False
    assert limiter.outcome.restored is False
    assert "could not restore GPU 0" in caplog.text


def test_the_current_limit_is_not_rewritten(fake_nvml_class, make_gpu):
    gpus = [make_gpu(0, limit_mw=300_000)]
    limiter = _limiter(fake_nvml_class, gpus)
    assert limiter.apply(300.0).applied
    assert limiter.restore()
    assert gpus[0].set_calls == []


def test_nothing_requested_or_no_gpu(fake_nvml_class, make_gpu):
    gpus = [make_gpu(0)]
    assert _limiter(fake_nvml_class, gpus).apply(None).code is LimitCode.NOT_REQUESTED
    assert gpus[0].set_calls == []
    assert _limiter(fake_nvml_class, []).apply(250.0).code is LimitCode.NO_GPU
