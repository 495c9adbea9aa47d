"""Carbon traces as a provider: for the demo, for tests, and as a fallback when live data is missing.

Two time modes:

- ``shift="none"``: the file's timestamps are used as they are (naive = UTC).
- ``shift="toNow"``: the trace is replayed on wall-clock time. The rule: trace time ``anchor``
  corresponds to 00:00 UTC of the day the provider was created (operator start), and time runs on
  from there, so wall time ``w`` shows the trace at ``anchor + (w - that midnight)``. Outside the
  trace, the trace repeats with a period of its length rounded down to whole days (so each hour of
  the day keeps its own character), or its full length if it spans less than a day.

``forecast`` is the trace's values with optional multiplicative noise ``1 + f * z`` (``z`` a
standard normal clipped to +-2), drawn once per trace row from a generator seeded by ``seed`` and
the zone: deterministic for a seed, and the same row always gets the same noise, so repeated
forecasts agree with each other. ``history`` is the trace itself, without noise.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BeforeValidator, Field

from . import plugin
from .provider import ErrorReason, ProviderError
from .series import IntensityPoint, IntensitySeries, SignalKind, utc
from .trace_file import MICROSECOND, TraceFormatError, TraceRows, epoch_us, from_epoch_us, read_trace_rows

TraceShift = Literal["none", "toNow"]
MAX_NOISE_FRACTION = 0.5
_DAY = timedelta(days=1)


def day_start(dt: datetime) -> datetime:
    return utc(dt).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class _Trace:
    """One zone's trace as columns (microseconds since the epoch); points are made only for the
    rows a call asks for."""

    starts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    forecast_values: npt.NDArray[np.float64]
    """``values`` times each row's noise."""
    step: timedelta
    offsets: npt.NDArray[np.int64]
    """Start of each replayed row relative to the trace's first row; only rows inside one period."""
    period: int
    anchor_offset: int
    """anchor - first row."""
    provider: str
    signal: SignalKind


class TraceProvider:
    """``traces``: per zone, a loaded series (its points name the provider and signal) or the
    file's rows (named ``name`` and ``signal``)."""

    def __init__(
        self,
        name: str,
        traces: Mapping[str, IntensitySeries | TraceRows],
        *,
        shift: TraceShift = "none",
        anchor: datetime | None = None,
        noise_fraction: float = 0.0,
        seed: int = 0,
        signal: SignalKind = SignalKind.AVERAGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 0.0 <= noise_fraction < MAX_NOISE_FRACTION:
            raise ValueError(f"noise fraction must be in [0, {MAX_NOISE_FRACTION}), got {noise_fraction}")
        self.name = name
        self.shift: TraceShift = shift
        self._base = day_start(clock())
        self._traces: dict[str, _Trace] = {}
        for zone, trace in traces.items():
            if isinstance(trace, IntensitySeries):
                first = trace.points[0] if trace.points else None
                rows = TraceRows(
                    np.array([epoch_us(p.start) for p in trace.points], dtype=np.int64),
                    np.array([p.grams_per_kwh for p in trace.points], dtype=np.float64),
                    trace.step,
                )
                provider, kind = (first.provider, first.signal) if first else (name, signal)
            else:
                rows, provider, kind = trace, name, signal
            self._traces[zone] = _prepare(zone, rows, anchor, noise_fraction, seed, provider, kind)

    def zones(self) -> list[str]:
        return sorted(self._traces)

    @property
    def base(self) -> datetime:
        """Wall-clock midnight that ``anchor`` maps to in ``toNow`` mode."""
        return self._base

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._series(zone, utc(start), utc(end), noisy=True)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._series(zone, utc(start), utc(end), noisy=False)

    def _series(self, zone: str, start: datetime, end: datetime, *, noisy: bool) -> IntensitySeries:
        tr = self._traces.get(zone)
        if tr is None:
            raise ProviderError(
                self.name,
                f"no trace for zone {zone!r}; have {', '.join(self.zones())}",
                reason=ErrorReason.NO_DATA,
            )
        s, e = epoch_us(start), epoch_us(end)
        rows = self._replayed(tr, s, e) if self.shift == "toNow" else self._as_is(tr, s, e)
        values = tr.forecast_values if noisy else tr.values
        pts = tuple(IntensityPoint(from_epoch_us(when), float(values[i]), tr.provider, tr.signal) for i, when in rows)
        out = IntensitySeries(zone, pts, tr.step)
        if not out.points:
            raise ProviderError(
                self.name,
                f"trace {zone} has no data for [{start.isoformat()}, {end.isoformat()})",
                reason=ErrorReason.NO_DATA,
            )
        return out

    def _as_is(self, tr: _Trace, start: int, end: int) -> list[tuple[int, int]]:
        if int(tr.starts[-1]) + tr.step // MICROSECOND <= start:
            return []
        lo = max(int(np.searchsorted(tr.starts, start, side="right")) - 1, 0)
        hi = int(np.searchsorted(tr.starts, end, side="left"))
        return [(i, int(tr.starts[i])) for i in range(lo, hi)]

    def _replayed(self, tr: _Trace, start: int, end: int) -> list[tuple[int, int]]:
        # Position of `start` within the repeating cycle, and the wall time where that cycle began.
        pos = (start - epoch_us(self._base) + tr.anchor_offset) % tr.period
        cycle_start = start - pos
        i = int(np.searchsorted(tr.offsets, pos, side="right")) - 1
        out: list[tuple[int, int]] = []
        while True:
            when = cycle_start + int(tr.offsets[i])
            if when >= end:
                return out
            out.append((i, when))
            i += 1
            if i == tr.offsets.size:
                i = 0
                cycle_start += tr.period


def _prepare(
    zone: str,
    rows: TraceRows,
    anchor: datetime | None,
    noise_fraction: float,
    seed: int,
    provider: str,
    signal: SignalKind,
) -> _Trace:
    if len(rows) == 0:
        raise ValueError(f"trace for zone {zone} is empty")
    first, end = rows.start_at(0), rows.start_at(len(rows) - 1) + rows.step
    length = end - first
    period = (length // _DAY) * _DAY if length >= _DAY else length
    relative = rows.starts_us - rows.starts_us[0]
    offsets = relative[relative < period // MICROSECOND]
    a = utc(anchor) if anchor is not None else day_start(first)
    if not first - _DAY < a < end:
        raise ValueError(
            f"anchor {a.isoformat()} is outside the trace for zone {zone} ({first.isoformat()} .. {end.isoformat()})"
        )
    forecast = rows.values
    if noise_fraction:
        rng = random.Random(f"{seed}:{zone}")
        noise = [1.0 + noise_fraction * max(-2.0, min(2.0, rng.gauss(0.0, 1.0))) for _ in range(len(rows))]
        forecast = rows.values * np.array(noise, dtype=np.float64)
    return _Trace(
        rows.starts_us,
        rows.values,
        forecast,
        rows.step,
        offsets,
        period // MICROSECOND,
        (a - first) // MICROSECOND,
        provider,
        signal,
    )


# -- configuration: providers.<name> with type: trace ----------------------------------------------


@dataclass(frozen=True)
class TraceConfig:
    TYPE: ClassVar[str] = "trace"
    name: str
    files: Mapping[str, Path]
    units: plugin.Units = "gCO2eqPerKWh"
    signal: SignalKind = SignalKind.AVERAGE
    shift: TraceShift = "none"
    anchor: datetime | None = None
    noise_fraction: float = 0.0
    seed: int = 0

    @property
    def scale(self) -> float:
        return plugin.UNIT_SCALE[self.units]


def _files(raw: Any) -> Any:
    if raw is None or (isinstance(raw, Mapping) and not raw):
        raise plugin.FieldError(
            "files", "required; map each zone to a CSV trace, e.g. {DE: data/carbon/lwa_ger_2020.csv}"
        )
    if not isinstance(raw, Mapping):
        raise plugin.FieldError("files", f"expected a mapping (YAML object), got {plugin.kind(raw)}")
    out: dict[str, str] = {}
    for zone, path in raw.items():
        if not isinstance(path, str) or not path.strip():
            raise plugin.FieldError(f"files.{zone}", f"expected a file path, got {path!r}")
        out[str(zone)] = path
    return out


def _anchor_before(raw: Any) -> Any:
    return _anchor(raw, "anchor")


class TraceSchema(plugin.Schema):
    """providers.<name> with type: trace."""

    type: Literal["trace"]
    files: Annotated[dict[str, str], BeforeValidator(_files)] = Field(
        description="map each zone to a CSV trace, e.g. {DE: data/carbon/lwa_ger_2020.csv}", min_length=1
    )
    units: plugin.UnitsField = Field("gCO2eqPerKWh", description="gCO2eqPerKWh or lbsPerMWh")
    signal: plugin.SignalField = Field(None, description="average or marginal (default: marginal for lbsPerMWh)")
    shift: Annotated[
        TraceShift,
        plugin.Hint("must be 'none' (file timestamps as they are) or 'toNow' (replay on the wall clock)"),
    ] = Field("none", description="none (file timestamps as they are) or toNow (replay on the wall clock)")
    anchor: Annotated[datetime | None, BeforeValidator(_anchor_before)] = Field(
        None, description='the trace time replayed at today 00:00 UTC with shift: toNow, e.g. "2020-06-01T00:00:00Z"'
    )
    noise_fraction: Annotated[
        float,
        Field(ge=0, lt=MAX_NOISE_FRACTION),
        plugin.Hint(f"expected a number in [0, {MAX_NOISE_FRACTION}), e.g. 0.05"),
    ] = Field(0.0, alias="noiseFraction", description="seeded multiplicative noise on the forecast")
    seed: Annotated[int, plugin.Hint("expected a whole number")] = Field(0, description="the noise's seed")


def parse_config(name: str, m: Mapping[str, Any], p: str, base: Path) -> TraceConfig:
    v = plugin.validate(TraceSchema, m, p)
    files = {zone: (Path(f) if Path(f).is_absolute() else base / f) for zone, f in v.files.items()}
    return TraceConfig(
        name=name,
        files=files,
        units=v.units,
        signal=plugin.signal_of(v.signal, v.units),
        shift=v.shift,
        anchor=v.anchor,
        noise_fraction=v.noise_fraction,
        seed=v.seed,
    )


def _anchor(raw: Any, path: str) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return utc(raw)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    if isinstance(raw, str):
        try:
            return utc(datetime.fromisoformat(raw.strip()))
        except ValueError:
            raise plugin.FieldError(path, f'{raw!r} is not a timestamp; write e.g. "2020-06-01T00:00:00Z"') from None
    raise plugin.FieldError(path, f"expected a timestamp string, got {plugin.kind(raw)}")


def build(pc: TraceConfig, ctx: plugin.BuildContext) -> plugin.Built:
    """Reads the files now, so a bad file fails at start-up naming the field."""
    traces: dict[str, IntensitySeries | TraceRows] = {}
    for zone, path in pc.files.items():
        try:
            traces[zone] = read_trace_rows(path, scale=pc.scale)
        except TraceFormatError as exc:
            raise plugin.CarbonConfigError(
                f"providers.{pc.name}.files.{zone}: {exc} (relative paths resolve against the config file's directory)"
            ) from None
    try:
        trace = TraceProvider(
            pc.name,
            traces,
            shift=pc.shift,
            anchor=pc.anchor,
            noise_fraction=pc.noise_fraction,
            seed=pc.seed,
            signal=pc.signal,
            clock=ctx.clock,
        )
    except ValueError as exc:
        raise plugin.CarbonConfigError(f"providers.{pc.name}.anchor: {exc}") from None
    return trace, None


def trace_zone(pc: TraceConfig, zone: str, path: str) -> str:
    if zone not in pc.files:
        raise plugin.CarbonConfigError(
            f"{path}: trace provider {pc.name!r} has no file for zone {zone!r}; its zones: {', '.join(pc.files)}"
        )
    return zone


PROVIDER = plugin.ProviderType(
    "trace", parse_config, build, trace_zone, zone_example="'DE' (a trace file's zone)", schema=TraceSchema
)
