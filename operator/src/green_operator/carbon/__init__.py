"""Carbon-intensity data: providers behind one interface, a cache and an honest fallback chain.

Typical use (the operator)::

    cfg = parse_carbon_config(yaml_doc, base_dir=config_dir)
    carbon = CarbonService.from_config(cfg)
    result = carbon.forecast("europe-north1", start, end)   # or await carbon.forecast_async(...)
    result.series      # gCO2eq/kWh on UTC, covering [start, end)
    result.degraded, result.error, result.spans            # what is not fresh live data, and why

The package itself exports only the pure data types (results, series), so the decision core can use
them without importing the providers' HTTP stack; import the service, configuration and metrics from
their modules (`carbon.service`, `carbon.config`, `carbon.metrics`).
"""

from .provider import (
    CarbonProvider,
    DataSource,
    ErrorReason,
    ForecastResult,
    ProviderError,
    SourceSpan,
)
from .series import IntensityPoint, IntensitySeries, SignalKind, series_from_values, utc

__all__ = [
    "CarbonProvider",
    "DataSource",
    "ErrorReason",
    "ForecastResult",
    "IntensityPoint",
    "IntensitySeries",
    "ProviderError",
    "SignalKind",
    "SourceSpan",
    "series_from_values",
    "utc",
]
