"""The provider types the configuration's ``providers.<name>.type`` may name: one line each.

Adding a provider: write its module (provider class, configuration dataclass, ``parse_config``,
``build``, ``PROVIDER = plugin.ProviderType(...)``) and add it to ``_BUILTIN``. Tests (or an
embedding program) may ``register`` another type at run time.
"""

from __future__ import annotations

from . import carbon_aware_sdk, electricitymaps, trace_provider, ukci, watttime
from .plugin import ProviderType

_BUILTIN: tuple[ProviderType, ...] = (
    electricitymaps.PROVIDER,
    watttime.PROVIDER,
    ukci.PROVIDER,
    carbon_aware_sdk.PROVIDER,
    trace_provider.PROVIDER,
)

_TYPES: dict[str, ProviderType] = {pt.type: pt for pt in _BUILTIN}


def register(pt: ProviderType) -> None:
    """Add (or replace) a provider type."""
    _TYPES[pt.type] = pt


def unregister(type_name: str) -> None:
    _TYPES.pop(type_name, None)


def provider_type(type_name: object) -> ProviderType | None:
    return _TYPES.get(type_name) if isinstance(type_name, str) else None


def provider_types() -> tuple[str, ...]:
    return tuple(_TYPES)


def type_of(config: object) -> ProviderType:
    """The provider type a parsed configuration belongs to (its class's ``TYPE``)."""
    name = getattr(config, "TYPE", None)
    pt = provider_type(name)
    if pt is None:
        raise LookupError(f"no provider type registered for {type(config).__name__} (TYPE={name!r})")
    return pt
