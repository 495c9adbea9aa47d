"""Carbon-intensity data: providers behind one interface, a cache and an honest fallback chain.

Typical use (the operator)::

    cfg = parse_carbon_config(yaml_doc, base_dir=config_dir)
    carbon = CarbonService.from_config(cfg)
    result = carbon.forecast("europe-north1", start, end)   # or await carbon.forecast_async(...)
    result.series      # gCO2eq/kWh on UTC, covering [start, end)
    result.degraded, result.error, result.spans            # what is not fresh live data, and why
"""

from .config import CarbonConfig, CarbonConfigError, RegionCarbonConfig, parse_carbon_config
from .metrics import CarbonMetrics
from .provider import (
    CarbonProvider,
    DataSource,
    ErrorReason,
    ForecastResult,
    ProviderError,
    SourceSpan,
)
from .series import IntensityPoint, IntensitySeries, SignalKind, series_from_values, utc
from .service import CarbonService, UnknownRegionError

__all__ = [
    "CarbonConfig",
    "CarbonConfigError",
    "CarbonMetrics",
    "CarbonProvider",
    "CarbonService",
    "DataSource",
    "ErrorReason",
    "ForecastResult",
    "IntensityPoint",
    "IntensitySeries",
    "ProviderError",
    "RegionCarbonConfig",
    "SignalKind",
    "SourceSpan",
    "UnknownRegionError",
    "parse_carbon_config",
    "series_from_values",
    "utc",
]
