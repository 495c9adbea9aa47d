"""The report's chart: intensity curves from the carbon service, one panel per region, job windows on it."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import LineCollection

from green_operator.carbon.config import parse_carbon_config
from green_operator.carbon.provider import DataSource, ForecastResult, SourceSpan
from green_operator.carbon.series import series_from_values
from green_operator.carbon.service import CarbonService
from green_operator.reporting import (
    BASELINE_GID,
    JOB_PLANNED_GID,
    JOB_RUN_GID,
    Curve,
    build_figure,
    chart_data,
    curves_from_result,
    region_curves,
    report_span,
    rows_from_items,
    write_png,
)
from tests.operator.reporting import samples as s
from tests.support.operator_config import write_trace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CarbonService]:
    """europe-west3: a trace covering the whole day; us-west2: a trace covering only 08:00-10:00 (the
    service fills the rest from the static factor); europe-west9: static factor only."""
    day = s.NOW.replace(hour=0)
    write_trace(tmp_path / "de.csv", day, timedelta(hours=1), [100 + 10 * (i % 12) for i in range(48)])
    write_trace(tmp_path / "ca.csv", s.NOW.replace(hour=8), timedelta(hours=1), [250, 260])
    doc = {
        "providers": {"traces": {"type": "trace", "files": {"DE": "de.csv", "CA": "ca.csv"}, "shift": "none"}},
        "regions": [
            {"name": "europe-west3", "carbon": {"provider": "traces", "zone": "DE"}},
            {"name": "us-west2", "carbon": {"provider": "traces", "zone": "CA", "staticGramsPerKwh": 230}},
            {"name": "europe-west9", "carbon": {"staticGramsPerKwh": 56}},
        ],
    }
    svc = CarbonService.from_config(parse_carbon_config(doc, base_dir=tmp_path), clock=lambda: s.NOW)
    yield svc
    svc.close()


def _curves(service: CarbonService, rows: Any, span: tuple[datetime, datetime]) -> dict[str, list[Curve]]:
    out: dict[str, list[Curve]] = {}
    for region in ("europe-west3", "europe-west9", "us-west2"):
        out[region], _ = region_curves(service, region, span[0], span[1], s.NOW)
    return out


def _gids(ax: Any) -> Counter[str]:
    artists = [*ax.patches, *ax.lines]
    return Counter(a.get_gid() for a in artists if a.get_gid())


def test_span_covers_every_window_and_baseline() -> None:
    rows = rows_from_items(s.all_jobs())
    span = report_span(rows, s.NOW)
    assert span is not None
    earliest = s.NOW.replace(hour=6)  # baseline start of "good"
    latest = s.NOW.replace(hour=16)  # deferred: planned 14:00 + 2h
    pad = (latest - earliest) * 0.05
    assert span == (earliest - pad, latest + pad)
    assert report_span(rows_from_items([s.pending()]), s.NOW) is None


def test_region_curves_split_history_and_forecast_and_label_fallbacks(service: CarbonService) -> None:
    start, end = s.NOW - timedelta(hours=4), s.NOW + timedelta(hours=2)
    de, notes = region_curves(service, "europe-west3", start, end, s.NOW)
    # Its configured trace: labelled as trace data, but not as a fallback.
    assert [(c.forecast, c.source, c.fallback) for c in de] == [(False, "trace", False), (True, "trace", False)]
    assert [c.label for c in de] == ["history: trace (traces)", "forecast: trace (traces)"]
    assert de[0].times[0] == start
    assert de[0].times[-1] == s.NOW
    assert de[1].times[0] == s.NOW
    assert de[1].times[-1] == end
    assert de[0].values[:2] == (100 + 10 * 8, 100 + 10 * 9)  # trace rows at 08:00 and 09:00
    assert notes == []

    ca, notes = region_curves(service, "us-west2", start, end, s.NOW)
    assert [c.source for c in ca if not c.forecast] == ["trace", "static"]
    static = next(c for c in ca if c.source == "static")
    assert static.fallback
    assert static.label == "history: static fallback (static)"
    assert set(static.values) == {230.0}
    assert notes
    assert notes[0].startswith("us-west2 history:")

    none, notes = region_curves(service, "mars-north1", start, end, s.NOW)
    assert none == []
    assert "mars-north1" in notes[0]


def test_curves_follow_the_answer_spans() -> None:
    start = s.NOW - timedelta(hours=3)
    series = series_from_values("DE", "emaps", start, timedelta(hours=1), [100, 200, 300])
    result = ForecastResult(
        region="europe-west3",
        series=series,
        source=DataSource.TRACE,
        provider="emaps+traces",
        stale=False,
        spans=(
            SourceSpan(DataSource.LIVE, "emaps", start, start + timedelta(hours=1)),
            SourceSpan(DataSource.TRACE, "traces", start + timedelta(hours=1), s.NOW),
        ),
    )
    live, trace = curves_from_result(result, start + timedelta(minutes=30), s.NOW, forecast=False)
    assert live.times == (start + timedelta(minutes=30), start + timedelta(hours=1))
    assert live.values == (100.0,)
    assert not live.fallback
    assert live.label == "history: emaps"
    assert trace.values == (200.0, 300.0)
    assert trace.label == "history: trace fallback (traces)"


def test_figure_has_a_panel_per_region_with_its_jobs(service: CarbonService, tmp_path: Path) -> None:
    rows = rows_from_items(s.all_jobs())
    span = report_span(rows, s.NOW)
    assert span is not None
    data = chart_data(rows, s.NOW, span, _curves(service, rows, span))
    fig = build_figure(data)

    assert [ax.get_gid() for ax in fig.axes] == ["europe-west3", "europe-west9", "us-west2"]
    panels = {ax.get_gid(): ax for ax in fig.axes}
    # europe-west3: good (ran) + running; europe-west9: worse (ran) + deferred (planned); us-west2: failed.
    assert _gids(panels["europe-west3"]) == {JOB_RUN_GID: 2, BASELINE_GID: 2}
    assert _gids(panels["europe-west9"]) == {JOB_RUN_GID: 1, JOB_PLANNED_GID: 1, BASELINE_GID: 2}
    assert _gids(panels["us-west2"]) == {JOB_RUN_GID: 1, BASELINE_GID: 1}

    texts = {ax.get_gid(): " ".join(t.get_text() for t in ax.texts) for ax in fig.axes}
    assert "deferred (planned)" in texts["europe-west9"]
    assert "baseline in europe-west3" in texts["europe-west9"]  # "worse" had its baseline elsewhere
    assert "good" in texts["europe-west3"]
    assert "running" in texts["europe-west3"]

    titles = {ax.get_gid(): ax.get_title(loc="left") for ax in fig.axes}
    assert "fallback" not in titles["europe-west3"]
    assert "fallback data: static (static)" in titles["europe-west9"]
    assert "fallback data: static (static)" in titles["us-west2"]
    box = panels["europe-west9"].get_legend()
    assert box is not None
    legend = [t.get_text() for t in box.get_texts()]
    assert "history: static fallback (static)" in legend
    assert "forecast: static fallback (static)" in legend  # the deferred job's window is in the future
    assert "planned window (deferred)" in legend

    out = write_png(fig, tmp_path / "chart.png")
    raw = out.read_bytes()
    assert raw[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", raw[16:24])  # the IHDR chunk
    w_in, h_in = fig.get_size_inches()
    assert (width, height) == (round(w_in * fig.dpi), round(h_in * fig.dpi))
    assert len(raw) > 30_000  # three panels with curves and spans, not a blank image


def test_status_only_chart_says_so(tmp_path: Path) -> None:
    rows = rows_from_items(s.all_jobs())
    span = report_span(rows, s.NOW)
    assert span is not None
    data = chart_data(rows, s.NOW, span, None)
    assert data.status_only
    assert "No carbon configuration given" in data.notes[0]
    fig = build_figure(data)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title(loc="left").endswith("(status values only)")
        labels = [str(line.get_label()) for line in ax.lines]
        assert not any(lab.startswith(("history", "forecast")) for lab in labels)
    assert "No carbon configuration given" in fig.get_supxlabel()
    assert sum(_gids(ax)[JOB_RUN_GID] for ax in fig.axes) == 4
    # Job levels are the statuses' own intensities: measured 100 g/kWh for "good".
    ew3 = next(ax for ax in fig.axes if ax.get_gid() == "europe-west3")
    hlines = [c for c in ew3.collections if isinstance(c, LineCollection)]
    levels = sorted(float(seg[0][1]) for coll in hlines for seg in coll.get_segments())
    assert levels == [80.0, 100.0]  # running: plan 80; good: measured 100
    assert write_png(fig, tmp_path / "c.png").read_bytes()[:8] == PNG_SIGNATURE


def test_no_jobs_still_writes_a_chart(tmp_path: Path) -> None:
    data = chart_data([], s.NOW, (s.NOW, s.NOW + timedelta(hours=1)), {})
    fig = build_figure(data)
    assert len(fig.axes) == 1
    assert "No jobs" in fig.axes[0].texts[0].get_text()
    assert write_png(fig, tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE


def test_labels_name_the_namespace_when_several() -> None:
    other = s.succeeded_saving()
    other["metadata"].update(namespace="research", uid="u2")
    rows = rows_from_items([s.succeeded_saving(), other])
    span = report_span(rows, s.NOW)
    assert span is not None
    data = chart_data(rows, s.NOW, span, None)
    assert [j.label for j in data.panels[0].jobs] == ["ml/good", "research/good"]
