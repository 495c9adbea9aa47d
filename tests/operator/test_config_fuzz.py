"""Fuzzing the operator configuration: any YAML document (mutations of the shipped example, any
JSON, any text) loads or raises ConfigError naming what is wrong; never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from green_operator.config import ConfigError, OperatorConfig, load_config, parse_config
from tests.support.fuzz import json_values, mutated

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())


@given(doc=mutated(EXAMPLE) | json_values)
def test_any_document_parses_or_is_a_config_error(doc: Any) -> None:
    try:
        cfg = parse_config(doc if isinstance(doc, dict) else {"regions": doc}, REPO / "examples")
    except ConfigError as err:
        event("refused")
        message = str(err)
    else:
        event("parsed")
        message = ", ".join(cfg.region_names)
        assert isinstance(cfg, OperatorConfig)
    assert message  # an error names what is wrong; a configuration has regions


@given(text=st.text(max_size=200) | mutated(EXAMPLE).map(lambda d: yaml.safe_dump(d)))
def test_any_file_loads_or_is_a_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "operator-config.yaml"
        path.write_text(text)
        try:
            message = ", ".join(load_config(path).region_names)
        except ConfigError as err:
            message = str(err)
    assert message
