import json
import os

import pytest

from green_trainer.carbon import CarbonIntensity, emissions_grams, parse_intensity_file


def test_emissions_are_kwh_times_intensity():
    assert emissions_grams(3.6e6, 100.0) == pytest.approx(100.0)
    assert emissions_grams(1800.0, 400.0) == pytest.approx(0.2)


def test_parse_intensity_file():
    assert parse_intensity_file('{"gramsPerKwh": 123.5, "updatedAt": "2026-01-01T00:00:00Z"}') == 123.5
    assert parse_intensity_file('{"gramsPerKwh": 80}') == 80.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not JSON"),
        ("[]", "gramsPerKwh"),
        ('{"gramsPerKwh": -1}', "non-negative"),
        ('{"gramsPerKwh": "x"}', "number"),
    ],
)
def test_bad_intensity_files_say_what_is_wrong(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_intensity_file(text)


def _write(path, grams, mtime_ns):
    path.write_text(json.dumps({"gramsPerKwh": grams, "updatedAt": "2026-01-01T00:00:00Z"}))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_file_wins_while_valid_and_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "intensity.json"
    intensity = CarbonIntensity(env_value=300.0, file=path)
    assert intensity.current(0.0) == 300.0
    assert intensity.source == "env"
    _write(path, 120.0, 1_000_000_000)
    assert intensity.current(0.5) == 300.0  # not checked again within a second
    assert intensity.current(1.0) == 120.0
    assert intensity.source == "file"
    _write(path, 95.0, 2_000_000_000)
    assert intensity.current(2.0) == 95.0
    path.write_text("{broken")
    assert intensity.current(3.0) == 300.0
    path.unlink()
    assert intensity.current(4.0) == 300.0
    assert intensity.source == "env"


def test_without_any_value_there_is_no_intensity(tmp_path):
    intensity = CarbonIntensity(env_value=None, file=tmp_path / "missing.json")
    assert intensity.current(0.0) is None
    assert intensity.source == "none"
