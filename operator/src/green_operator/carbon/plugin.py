"""What a carbon provider type plugs into: its configuration parser, its builder, shared field readers.

A provider module (``electricitymaps.py`` ...) owns its configuration dataclass, a ``parse`` that
reads one ``providers.<name>`` mapping (every error naming the field path and the fix), and a
``build`` that makes the provider from it; it exposes them as ``PROVIDER = ProviderType(...)`` and
is listed once in ``registry.py``. Nothing here imports the HTTP stack: ``BuildContext.http_client``
imports it when a provider is built.
"""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from .credentials import SecretRef
from .provider import CarbonProvider
from .series import SignalKind

if TYPE_CHECKING:
    import requests

    from .transport import HttpClient

LBS_PER_MWH_TO_G_PER_KWH = 0.453592
Units = Literal["gCO2eqPerKWh", "lbsPerMWh"]
UNIT_SCALE: Mapping[str, float] = {"gCO2eqPerKWh": 1.0, "lbsPerMWh": LBS_PER_MWH_TO_G_PER_KWH}


class CarbonConfigError(ValueError):
    """Invalid carbon configuration; the message starts with the field path (``regions[2].carbon.zone``)."""


class ProviderConfig(Protocol):
    """A parsed ``providers.<name>`` entry: frozen, secrets by reference only (safe to log)."""

    @property
    def name(self) -> str: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_session() -> requests.Session:
    import requests

    return requests.Session()


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: the shared carbon settings, the clock and the HTTP plumbing."""

    request_timeout: timedelta = timedelta(seconds=10)
    max_retries: int = 2
    clock: Callable[[], datetime] = _utc_now
    session_factory: Callable[[], requests.Session] = _default_session
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def http_client(self, name: str, base_url: str, timeout: timedelta | None) -> HttpClient:
        from .transport import HttpClient, RetryPolicy

        t = timeout if timeout is not None else self.request_timeout
        return HttpClient(
            name,
            base_url,
            self.session_factory(),
            timeout_s=t.total_seconds(),
            retry=RetryPolicy(max_retries=self.max_retries),
            sleep=self.sleep,
            rand=self.rand,
            clock=self.clock,
        )


Built = tuple[CarbonProvider, Callable[[], None] | None]
"""A provider and what releases its resources (None: nothing to release)."""


@dataclass(frozen=True)
class ProviderType:
    """One ``type:`` of provider.

    ``parse(name, mapping, path, base_dir)`` validates ``providers.<name>`` (``path`` is that field
    path; relative files resolve against ``base_dir``). ``build(config, ctx)`` makes the provider.
    ``static_zone(config, zone, path)`` checks a region's ``zone`` for this provider and returns the
    zone to look up a default static factor for (None: none known); by default the zone itself.
    """

    type: str
    parse: Callable[[str, Mapping[str, Any], str, Path], Any]
    build: Callable[[Any, BuildContext], Built]
    static_zone: Callable[[Any, str, str], str | None] = lambda cfg, zone, path: zone
    zone_example: str = ""
    """Shown when a region names this provider but no zone, e.g. "'FI' (Electricity Maps)"."""
    schema: builtins.type[BaseModel] | None = None
    """The pydantic model of ``providers.<name>`` (with its ``type`` literal): the chart's JSON schema."""


# -- schemas: pydantic models of providers.<name> -------------------------------------------------


class Schema(BaseModel):
    """Base of the provider schemas: YAML names (aliases), strict types, unknown fields refused.

    A field's ``description`` says what it holds (the message when a required one is missing, and
    the chart's JSON schema); a ``Hint`` in its metadata is the message for a wrong value.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class Hint:
    text: str
    inline: bool = False
    """Written as ``path text`` (the operator settings' style) instead of ``path: text``."""
    got: bool = True
    """Followed by ``, got <value>``."""


class FieldError(ValueError):
    """Raised by a schema's model validator about one field (its YAML name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


S = TypeVar("S", bound=BaseModel)

Seconds = Annotated[float | None, Field(gt=0, le=300), Hint("expected seconds in (0, 300], e.g. 10")]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://"), Hint("expected an http(s) URL")]
EnvName = Annotated[
    str | None, StringConstraints(strip_whitespace=True, min_length=1), Hint("expected an environment variable name")
]
FileName = Annotated[str | None, StringConstraints(strip_whitespace=True, min_length=1), Hint("expected a file path")]
UnitsField = Annotated[Units, Hint("must be 'gCO2eqPerKWh' or 'lbsPerMWh'")]
SignalField = Annotated[Literal["average", "marginal"] | None, Hint("must be 'average' or 'marginal'")]


def validate(model: type[S], m: Mapping[str, Any], p: str, *, unknown: Literal["field", "keys"] = "field") -> S:
    """``m`` validated by ``model``; the first problem as ``CarbonConfigError("<p>.<field>: <message>")``.
    ``unknown="keys"``: unknown keys are listed together, ``<p>: unknown key(s) [...]; allowed: [...]``."""
    try:
        return model.model_validate(dict(m))
    except ValidationError as exc:
        raise CarbonConfigError(describe(exc, model, p, unknown=unknown)) from None


def describe(
    exc: ValidationError, model: type[BaseModel], p: str, *, unknown: Literal["field", "keys"] = "field"
) -> str:
    """A pydantic error in the configuration's ``field.path: message`` form (unknown fields first)."""
    errors = exc.errors()
    extra = [x for x in errors if x["type"] == "extra_forbidden"]
    if unknown == "keys" and extra and all(len(x["loc"]) == 1 for x in extra):
        keys = sorted(str(x["loc"][0]) for x in extra)
        return f"{p}: unknown key(s) {keys}; allowed: {sorted(aliases(model))}"
    e = extra[0] if extra else errors[0]
    loc = [str(part) for part in e["loc"]]
    where = ".".join([p, *loc])
    owner, info = _walk(model, loc)
    hint = next((h for h in info.metadata if isinstance(h, Hint)), None) if info else None
    if hint is not None and hint.inline and e["type"] not in ("extra_forbidden", "value_error", "missing"):
        return f"{p}.{loc[0]} {hint.text}" + (f", got {e['input']!r}" if hint.got else "")
    if e["type"] == "extra_forbidden":
        return f"{where}: unknown field; known fields: {', '.join(aliases(owner))}"
    cause = (e.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return f"{'.'.join([p, *loc[:-1], cause.field]) if loc else p + '.' + cause.field}: {cause}"
    if e["type"] == "value_error":
        return f"{where}: {cause}"
    if e["type"] == "missing":
        return f"{where}: required; {info.description if info and info.description else 'see the documentation'}"
    return f"{where}: {hint.text if hint else e['msg']}, got {e['input']!r}"


def _walk(model: type[BaseModel], loc: Sequence[str]) -> tuple[type[BaseModel], FieldInfo | None]:
    """The model that owns the last field of ``loc`` (through nested models), and that field."""
    owner, info = model, None
    for i, part in enumerate(loc):
        f = _field(owner, part)
        if f is None:
            break
        info = f
        nested = _model_in(f.annotation)
        if nested is None or i == len(loc) - 1:
            break
        owner = nested
    return owner, info


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


def aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], alias: str) -> FieldInfo | None:
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == alias), None)


class SecretFields:
    """``<stem>Env`` / ``<stem>File`` pairs: at most one of each pair (``required``: exactly one)."""

    @staticmethod
    def check(model: BaseModel, stem: str, *, required: bool) -> None:
        env, file = getattr(model, f"{stem}_env"), getattr(model, f"{stem}_file")
        if env is not None and file is not None:
            raise FieldError(f"{stem}Env", f"set either {stem}Env or {stem}File, not both")
        if required and env is None and file is None:
            raise FieldError(
                f"{stem}Env",
                f"required; name the environment variable (or use {stem}File for a mounted Secret file) that holds it",
            )

    @staticmethod
    def schema_extra(*stems: tuple[str, bool]) -> JsonDict:
        """The same rules for the chart's JSON schema: ``json_schema_extra=schema_extra(("token", False))``."""
        rules: list[JsonValue] = []
        for stem, required in stems:
            env, file = f"{stem}Env", f"{stem}File"
            rules.append({"not": {"required": [env, file]}})
            if required:
                rules.append({"anyOf": [{"required": [env]}, {"required": [file]}]})
        return {"allOf": rules}

    @staticmethod
    def ref(env: str | None, file: str | None, base: Path) -> SecretRef | None:
        if env is not None:
            return SecretRef(env=env)
        if file is not None:
            fp = Path(file)
            return SecretRef(file=fp if fp.is_absolute() else base / fp)
        return None


def timedelta_or_none(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def signal_of(raw: str | None, u: Units) -> SignalKind:
    """Explicit ``signal``; by default lbs/MWh means a WattTime MOER source, i.e. marginal."""
    if raw is None:
        return SignalKind.MARGINAL if u == "lbsPerMWh" else SignalKind.AVERAGE
    return SignalKind(raw)


# -- readers for the shared parts of the configuration (carbon settings, regions) ---------------------


def mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CarbonConfigError(f"{path}: expected a mapping (YAML object), got {kind(raw)}")
    return raw


def kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
