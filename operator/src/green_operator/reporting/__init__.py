"""`green-operator report`: what the GreenTrainingJobs used, emitted and saved, as a table, JSON and a chart.

Pure parts (rows from status, totals, `--since`, rendering, chart layout) apart from the two I/O edges
the command owns: listing the jobs and asking the carbon service for intensity history.
"""

from .chart import (
    BASELINE_GID,
    JOB_PLANNED_GID,
    JOB_RUN_GID,
    ChartData,
    JobSpan,
    Panel,
    build_figure,
    chart_data,
    report_span,
    write_png,
)
from .intensity import Curve, IntensitySource, curves_from_result, region_curves
from .render import format_table, report_json, row_json, totals_json
from .rows import JobRow, Totals, compute_totals, row_from_gtj, rows_from_items
from .since import SinceError, parse_since, select_since

__all__ = [
    "BASELINE_GID",
    "JOB_PLANNED_GID",
    "JOB_RUN_GID",
    "ChartData",
    "Curve",
    "IntensitySource",
    "JobRow",
    "JobSpan",
    "Panel",
    "SinceError",
    "Totals",
    "build_figure",
    "chart_data",
    "compute_totals",
    "curves_from_result",
    "format_table",
    "parse_since",
    "region_curves",
    "report_json",
    "report_span",
    "row_from_gtj",
    "row_json",
    "rows_from_items",
    "select_since",
    "totals_json",
    "write_png",
]
