"""The Workflow manifest's `spec.steps` as a worker receives it (`--steps` / $CONVEYOR_STEPS, JSON keyed by
from-status name): parsed with pydantic, every problem named by its field (`steps.CREATED.errBackOff`), checked
against the steps the code declares, and turned into the Options that `build(step_options=...)` puts over the
code's `with_options`.

It lives apart from the command so that the operator's view of a step (camelCase keys, Go-style durations) is
translated in one place; the engine only ever sees Options."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from conveyor._engine.options import Options
from conveyor._engine.spec import WorkflowSpec

# Go's time.ParseDuration units, in nanoseconds.
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class ManifestError(ValueError):
    """The manifest's steps are not usable; `problems` names each one by its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_duration(text: str) -> timedelta:
    """A Go duration ("30s", "1m30s", "500ms", "2h", "1.5h", "0") as a timedelta; ValueError otherwise. Negative
    durations are refused: no option of a step takes one."""
    if text == "0":
        return timedelta(0)
    position, nanoseconds = 0, Decimal(0)
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            raise ValueError(text)
        nanoseconds += Decimal(part.group(1)) * _UNITS[part.group(2)]
        position = part.end()
    if position == 0:
        raise ValueError(text)
    return timedelta(microseconds=float(nanoseconds / 1000))


def _duration(value: object, *, positive: bool = False) -> timedelta | None:
    if value is None:
        return None
    example = "500ms" if positive else "30s"
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like {example}, got {value!r}")
    try:
        parsed = parse_duration(value.strip())
    except ValueError:
        raise ValueError(f"expected a duration like {example}, got {value!r}") from None
    if positive and parsed <= timedelta(0):
        raise ValueError(f"expected a positive duration like {example}, got {value!r}")
    return parsed


def _count(value: object, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
    return value


class StepManifest(BaseModel):
    """One entry of `spec.steps`. Every key is optional; what is given overrides the code's `with_options`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parallel_count: int | None = Field(None, alias="parallelCount")
    # The operator's business (hot standbys per shard); a worker accepts and ignores it.
    replicas_per_shard: int | None = Field(None, alias="replicasPerShard")
    pause_after_err_count: int | None = Field(None, alias="pauseAfterErrCount")
    err_backoff: timedelta | None = Field(None, alias="errBackOff")
    polling_frequency: timedelta | None = Field(None, alias="pollingFrequency")
    lag_alert: timedelta | None = Field(None, alias="lagAlert")
    consume_lag: timedelta | None = Field(None, alias="consumeLag")
    max_in_flight: int | None = Field(None, alias="maxInFlight")

    @field_validator("parallel_count", "replicas_per_shard", "max_in_flight", mode="before")
    @classmethod
    def _at_least_one(cls, value: object) -> int | None:
        return _count(value, 1)

    @field_validator("pause_after_err_count", mode="before")
    @classmethod
    def _at_least_zero(cls, value: object) -> int | None:
        return _count(value, 0)

    @field_validator("err_backoff", "lag_alert", "consume_lag", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta | None:
        return _duration(value)

    @field_validator("polling_frequency", mode="before")
    @classmethod
    def _positive_duration(cls, value: object) -> timedelta | None:
        return _duration(value, positive=True)

    def options(self) -> Options:
        """What this entry gives, as the Options to put over the code's (`build(step_options=...)`)."""
        return Options(
            parallel_count=self.parallel_count,
            pause_after_err_count=self.pause_after_err_count,
            err_backoff=self.err_backoff,
            polling_frequency=self.polling_frequency,
            lag_alert=self.lag_alert,
            consume_lag=self.consume_lag,
            max_in_flight=self.max_in_flight,
        )


_KEYS = ", ".join(str(f.alias) for f in StepManifest.model_fields.values())
_STEPS: TypeAdapter[dict[str, StepManifest]] = TypeAdapter(dict[str, StepManifest])


def parse_steps(text: str) -> dict[str, StepManifest]:
    """`--steps` JSON -> step name -> its entry. ManifestError naming each bad field."""
    try:
        raw: Any = json.loads(text)
    except ValueError as e:
        raise ManifestError([f"steps: expected JSON ({e})"]) from None
    if not isinstance(raw, dict):
        raise ManifestError([f"steps: expected a JSON object keyed by step status name, got {raw!r}"])
    try:
        return _STEPS.validate_python(raw)
    except ValidationError as e:
        raise ManifestError([_describe(error) for error in e.errors()]) from None


def _describe(error: Any) -> str:
    where = ".".join(["steps", *(str(part) for part in error["loc"])])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key; expected one of {_KEYS}"
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    if kind in ("model_type", "model_attributes_type"):
        return f"{where}: expected an object of step options ({_KEYS}), got {error['input']!r}"
    return f"{where}: {error['msg']}, got {error['input']!r}"


def mismatch(spec: WorkflowSpec[Any, Any], manifest: dict[str, StepManifest]) -> str | None:
    """None if the manifest names exactly the code's steps; otherwise one message naming what differs."""
    in_code = [spec.status_type(status).name for status in spec.steps]
    only_manifest = [name for name in manifest if name not in in_code]
    only_code = [name for name in in_code if name not in manifest]
    if not only_manifest and not only_code:
        return None
    status_names = {member.name for member in spec.status_type}

    def why(name: str) -> str:
        return "no step in the code" if name in status_names else f"not a status of {spec.status_type.__name__}"

    parts = []
    if only_manifest:
        parts.append("only in the manifest: " + ", ".join(f"{name} ({why(name)})" for name in only_manifest))
    if only_code:
        parts.append("only in the code: " + ", ".join(only_code))
    return f"the manifest's steps do not match the code of workflow {spec.name!r}: " + "; ".join(parts)


def step_options(spec: WorkflowSpec[Any, Any], manifest: dict[str, StepManifest]) -> dict[Any, Options]:
    """The manifest's options by step status, for `build(step_options=...)` (the manifest must match the code)."""
    return {spec.status_type[name]: entry.options() for name, entry in manifest.items()}
