"""The report's chart: one panel per region, its carbon intensity over time, each job's window on it.

`chart_data` (pure) decides what to draw; `build_figure` draws it and returns the matplotlib Figure
(so tests can inspect it before it is saved); `write_png` saves it. matplotlib is imported inside the
drawing functions only: it is a `tools` extra, and the operator image does not ship it.

Artists carry gids (`JOB_RUN_GID`, `JOB_PLANNED_GID`, `BASELINE_GID`) so the figure can be checked
without reading pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .intensity import Curve
from .rows import JobRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JOB_RUN_GID = "job-run"
JOB_PLANNED_GID = "job-planned"
BASELINE_GID = "baseline-start"
STATUS_ONLY_NOTE = (
    "No carbon configuration given (--config): intensities are the job statuses' own means "
    "(measured where the job finished, else the plan's forecast); no intensity history is drawn."
)
_PHASE_COLOURS = {
    "Succeeded": "tab:green",
    "Failed": "tab:red",
    "Running": "tab:blue",
    "Deferred": "tab:orange",
}
_SOURCE_COLOURS = {"live": "black", "cached": "tab:olive", "trace": "tab:purple", "static": "tab:gray"}


@dataclass(frozen=True)
class JobSpan:
    label: str
    start: datetime
    end: datetime
    intensity: float | None
    planned: bool
    """Deferred, not started: the window is the plan's, drawn in a different style."""
    phase: str
    baseline_start: datetime | None = None
    baseline_intensity: float | None = None
    baseline_region: str | None = None


@dataclass(frozen=True)
class Panel:
    region: str
    curves: tuple[Curve, ...]
    jobs: tuple[JobSpan, ...]

    @property
    def fallback_sources(self) -> tuple[str, ...]:
        seen: list[str] = []
        for c in self.curves:
            tag = f"{c.source} ({c.provider})"
            if c.fallback and tag not in seen:
                seen.append(tag)
        return tuple(seen)


@dataclass(frozen=True)
class ChartData:
    start: datetime
    end: datetime
    now: datetime
    panels: tuple[Panel, ...]
    title: str
    notes: tuple[str, ...] = field(default=())
    status_only: bool = False


def _span_times(row: JobRow, now: datetime) -> list[datetime]:
    out: list[datetime] = []
    window = row.window(now)
    if window is not None:
        out.extend(window)
        if row.baseline_start is not None:
            out.extend((row.baseline_start, row.baseline_start + (window[1] - window[0])))
    return out


def report_span(rows: Sequence[JobRow], now: datetime) -> tuple[datetime, datetime] | None:
    """The time span the chart covers: every drawn window and baseline window, padded 5% each side."""
    times = [t for r in rows if r.region for t in _span_times(r, now)]
    if not times:
        return None
    lo, hi = min(times), max(times)
    pad = max((hi - lo) * 0.05, timedelta(minutes=1))
    return lo - pad, hi + pad


def job_span(row: JobRow, now: datetime, label: str) -> JobSpan | None:
    window = row.window(now)
    if window is None:
        return None
    return JobSpan(
        label=label,
        start=window[0],
        end=window[1],
        intensity=row.drawn_intensity,
        planned=row.planned_only,
        phase=row.phase,
        baseline_start=row.baseline_start,
        baseline_intensity=row.baseline_intensity,
        baseline_region=row.baseline_region,
    )


def chart_data(
    rows: Sequence[JobRow],
    now: datetime,
    span: tuple[datetime, datetime],
    curves: Mapping[str, Sequence[Curve]] | None,
    *,
    title: str = "GreenTrainingJobs: carbon intensity and run windows",
    notes: Sequence[str] = (),
) -> ChartData:
    """What to draw. ``curves`` is None without a carbon configuration (status values only)."""
    namespaces = {r.namespace for r in rows}
    by_region: dict[str, list[JobSpan]] = {}
    for r in rows:
        if not r.region:
            continue
        label = r.name if len(namespaces) <= 1 else r.key
        js = job_span(r, now, label)
        if js is not None:
            by_region.setdefault(r.region, []).append(js)
    panels = tuple(
        Panel(region, tuple((curves or {}).get(region, ())), tuple(sorted(jobs, key=lambda j: j.start)))
        for region, jobs in sorted(by_region.items())
    )
    all_notes = ([STATUS_ONLY_NOTE] if curves is None else []) + list(notes)
    return ChartData(span[0], span[1], now, panels, title, tuple(all_notes), status_only=curves is None)


# -- drawing -----------------------------------------------------------------------------------------


def _naive(t: datetime) -> datetime:
    # matplotlib's date axis is set to UTC below; handing it naive UTC avoids per-artist tz handling.
    return t.astimezone(UTC).replace(tzinfo=None)


def build_figure(data: ChartData) -> Figure:
    """Draw the chart on a fresh Figure (Agg canvas, no pyplot state) and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(data.panels), 1)
    fig = Figure(figsize=(13, 2.0 + 3.2 * n), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(data.title, fontsize=12)
    if data.notes:
        # supxlabel takes part in the constrained layout, so the notes never overlap the panels.
        fig.supxlabel("\n".join(_wrap(n) for n in data.notes), x=0.01, ha="left", fontsize=7)
    if not data.panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No jobs with a region to chart", ha="center", va="center", fontsize=12)
        return fig
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, data.panels, strict=True):
        _draw_panel(ax, panel, data)
    _format_time_axis(axes[-1])
    return fig


def _wrap(text: str, width: int = 190) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _draw_panel(ax: Any, panel: Panel, data: ChartData) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.set_gid(panel.region)
    handles: dict[str, Any] = {}
    for c in panel.curves:
        xs = [_naive(t) for t in c.times]
        ys = [*c.values, c.values[-1]]
        (line,) = ax.step(
            xs,
            ys,
            where="post",
            color=_SOURCE_COLOURS.get(c.source, "black"),
            linestyle="--" if c.forecast else "-",
            linewidth=1.1,
            label=c.label,
        )
        handles.setdefault(c.label, line)

    levels = [j.intensity for j in panel.jobs if j.intensity is not None]
    levels += [j.baseline_intensity for j in panel.jobs if j.baseline_intensity is not None]
    levels += [v for c in panel.curves for v in c.values]
    top = max(levels) * 1.15 if levels and max(levels) > 0 else 1.0
    ax.set_ylim(0, top)

    for i, job in enumerate(panel.jobs):
        colour = _PHASE_COLOURS.get(job.phase, "tab:gray")
        x0, x1 = _naive(job.start), _naive(job.end)
        if job.planned:
            ax.axvspan(x0, x1, facecolor="none", edgecolor=colour, hatch="//", linestyle="--", gid=JOB_PLANNED_GID)
        else:
            ax.axvspan(x0, x1, facecolor=colour, alpha=0.22, edgecolor=colour, gid=JOB_RUN_GID)
        if job.intensity is not None:
            ax.hlines(job.intensity, x0, x1, colors=colour, linewidth=3, linestyles="--" if job.planned else "-")
        # Labels stagger down from the top so neighbouring windows stay readable.
        y = top * (0.94 - 0.09 * (i % 5))
        ax.text(
            x0,
            y,
            " " + job.label + (" (planned)" if job.planned else ""),
            fontsize=8,
            color=colour,
            va="top",
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1},
        )
        if job.baseline_start is not None and data.start <= job.baseline_start <= data.end:
            bx = _naive(job.baseline_start)
            ax.axvline(bx, color=colour, linestyle=":", linewidth=1.2, gid=BASELINE_GID)
            if job.baseline_intensity is not None:
                ax.plot([bx], [job.baseline_intensity], marker="v", color=colour, markersize=7, linestyle="none")
            if job.baseline_region and job.baseline_region != panel.region:
                ax.text(bx, top * 0.05, f" baseline in {job.baseline_region}", fontsize=7, color=colour)

    if data.start <= data.now <= data.end:
        ax.axvline(_naive(data.now), color="black", linewidth=0.8, alpha=0.6)
        handles.setdefault("now", Line2D([], [], color="black", linewidth=0.8, alpha=0.6))
    if any(not j.planned for j in panel.jobs):
        handles["run window (colour = phase)"] = Patch(facecolor="tab:green", alpha=0.22, edgecolor="tab:green")
    if any(j.planned for j in panel.jobs):
        handles["planned window (deferred)"] = Patch(facecolor="none", edgecolor="tab:orange", hatch="//")
    if any(j.baseline_start is not None for j in panel.jobs):
        handles["carbon-blind baseline start"] = Line2D([], [], color="gray", linestyle=":", marker="v")
    ax.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7)

    title = panel.region
    if data.status_only:
        title += " (status values only)"
    elif not panel.curves:
        title += " (no intensity data: status values only)"
    elif panel.fallback_sources:
        title += " (fallback data: " + ", ".join(panel.fallback_sources) + ")"
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel("gCO2eq/kWh")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(_naive(data.start), _naive(data.end))


def _format_time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")


def write_png(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    fig.savefig(p, format="png")
    return p
