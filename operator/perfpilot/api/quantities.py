"""Durations and resource quantities as the API writes them, parsed once and carried with their units.

Durations use Go's notation (``500ms``, ``30s``, ``10m``, ``1h30m``) because the API server's CEL
``duration()`` understands exactly that, so one string is valid for both validators. Quantities follow
Kubernetes' ``resource.Quantity`` for the two resources perfpilot sizes: CPU (``500m``, ``2``, ``0.5``)
and memory (``64Mi``, ``1Gi``, ``1e9``, ``500M``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Self

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_DURATION_UNITS_SECONDS: dict[str, Decimal] = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_MAX_EXPONENT = 18
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$"
# Bounded so the API server's CEL cost estimate for rules that parse these strings stays small;
# no real duration or quantity comes near it.
MAX_TEXT_LENGTH = 64
# Go's time.Duration (what CEL's duration() parses into) holds at most 2^63 - 1 nanoseconds.
MAX_DURATION_SECONDS = Decimal("9223372036.854775807")

_BINARY_SUFFIXES: dict[str, int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DECIMAL_SUFFIXES: dict[str, int] = {
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m|u|n)|[eE]([+-]?[0-9]+))?$")
# The API server writes what it canonicalises below a millicore in micro (u) and nano (n) units.
_SUBMILLI_SUFFIXES: dict[str, Decimal] = {"u": Decimal("1e-6"), "n": Decimal("1e-9")}
# The schema pattern is Kubernetes' own for resource.Quantity, unsigned: negatives never make sense here.
QUANTITY_PATTERN = r"^(\+)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # noqa: E501


def _invalid(kind: str, raw: object, why: str) -> PydanticCustomError:
    return PydanticCustomError(f"invalid_{kind}", "{why} (got {raw})", {"why": why, "raw": repr(raw)})


def parse_duration_seconds(raw: object) -> Decimal:
    """Parse ``1h30m``-style text into seconds; raise ``ValueError`` naming the value otherwise."""
    if not isinstance(raw, str):
        raise ValueError(f"a duration must be a string such as 30s, 10m or 1h30m (got {raw!r})")
    text = raw
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"a duration must be at most {MAX_TEXT_LENGTH} characters (got {raw!r})")
    if text != text.strip():
        # The CRD's pattern refuses them: the model must not accept what the API server will not.
        raise ValueError(f"a duration must not have spaces around it (got {raw!r})")
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration: use a number with ms, s, m or h, e.g. 30s, 10m, 1h30m (got {raw!r})")
    seconds = sum(
        (Decimal(number) * _DURATION_UNITS_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)),
        Decimal(0),
    )
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be at most 2562047h (the longest Kubernetes' CEL can parse) (got {raw!r})")
    return seconds


def format_duration(seconds: Decimal) -> str:
    """Shortest Go-style text for a duration: 5400 s -> ``1h30m``, 0.5 s -> ``500ms``."""
    if seconds == 0:
        return "0s"
    exact_millis = seconds * 1000
    millis = int(exact_millis)
    # Below a millisecond the pattern allows a decimal (0.5ms): dropping it wrote "" for a duration under 1ms.
    fraction = exact_millis - millis
    parts: list[str] = []
    for unit, size_ms in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size_ms)
        if count:
            parts.append(f"{count}{unit}")
    if millis or fraction:
        parts.append(f"{format((millis + fraction).normalize(), 'f')}ms")
    return "".join(parts)


class _ApiScalar:
    """Pydantic plumbing shared by the API's scalar types: validated by ``parse``, written by ``str``,
    ordered by magnitude. Errors keep the type's own sentence and name the value."""

    _ERROR_KIND: ClassVar[str]

    @classmethod
    def parse(cls, raw: object) -> Self:
        raise NotImplementedError

    def _magnitude(self) -> float:
        raise NotImplementedError

    @classmethod
    def _json_schema(cls) -> JsonSchemaValue:
        raise NotImplementedError

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _ApiScalar)
        return self._magnitude() < other._magnitude()

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _ApiScalar)
        return self._magnitude() <= other._magnitude()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: object) -> _ApiScalar:
            if isinstance(value, cls):
                return value
            try:
                return cls.parse(value)
            except ValueError as error:
                raise _invalid(cls._ERROR_KIND, value, str(error).split(" (got")[0]) from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return cls._json_schema()


@dataclass(frozen=True)
class Duration(_ApiScalar):
    """A span of time, always read as ``.seconds``; written back in its shortest Go-style form."""

    seconds: float
    _ERROR_KIND: ClassVar[str] = "duration"

    @classmethod
    def parse(cls, raw: object) -> Duration:
        return cls(float(parse_duration_seconds(raw)))

    def __str__(self) -> str:
        # A float holds the longest duration only to its nearest double, a little above it: written back
        # unclamped, the longest valid duration read as one over the limit.
        return format_duration(min(Decimal(str(self.seconds)), MAX_DURATION_SECONDS))

    def _magnitude(self) -> float:
        return self.seconds

    @classmethod
    def _json_schema(cls) -> JsonSchemaValue:
        return {"type": "string", "pattern": DURATION_PATTERN, "maxLength": MAX_TEXT_LENGTH}


def parse_quantity(raw: object) -> Decimal:
    """Parse a Kubernetes quantity into its plain value (cores for CPU, bytes for memory)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"a quantity must be a string or a number such as 500m, 2 or 1Gi (got {raw!r})")
    text = str(raw)
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"a quantity must be at most {MAX_TEXT_LENGTH} characters (got {raw!r})")
    if text != text.strip():
        raise ValueError(f"a quantity must not have spaces around it (got {raw!r})")
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: use e.g. 500m, 2, 0.5, 64Mi or 1Gi (got {raw!r})")
    number_text, suffix, exponent = match.groups()
    try:
        number = Decimal(number_text)
    except InvalidOperation:
        raise ValueError(f"not a quantity: use e.g. 500m, 2, 0.5, 64Mi or 1Gi (got {raw!r})") from None
    if number < 0:
        raise ValueError(f"a quantity cannot be negative (got {raw!r})")
    if exponent is not None:
        # Kubernetes quantities stop at exa (1e18); a larger exponent is a typo, not a size.
        if abs(int(exponent)) > _MAX_EXPONENT:
            bound = _MAX_EXPONENT
            raise ValueError(f"a quantity's exponent must be between -{bound} and {bound} (got {raw!r})")
        return number * (Decimal(10) ** int(exponent))
    if suffix == "m":
        return number / 1000
    if suffix in _SUBMILLI_SUFFIXES:
        return number * _SUBMILLI_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return number * _DECIMAL_SUFFIXES[suffix]
    return number


def format_cpu_millicores(millicores: int) -> str:
    """``1000`` -> ``"1"``, ``1500`` -> ``"1500m"``: whole cores when exact, as kubectl prints them."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory_bytes(count: int) -> str:
    """Largest binary unit that divides exactly: ``1073741824`` -> ``"1Gi"``, else plain bytes."""
    for suffix, size in sorted(_BINARY_SUFFIXES.items(), key=lambda item: -item[1]):
        if count and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)


def _quantity_json_schema() -> JsonSchemaValue:
    return {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": MAX_TEXT_LENGTH}],
            "x-kubernetes-int-or-string": True}


@dataclass(frozen=True)
class CpuQuantity(_ApiScalar):
    """CPU in millicores; parsed from ``500m``, ``2`` or ``0.5`` and rounded up to a whole millicore."""

    millicores: int
    _ERROR_KIND: ClassVar[str] = "quantity"

    @classmethod
    def parse(cls, raw: object) -> CpuQuantity:
        cores = parse_quantity(raw)
        millicores = int((cores * 1000).to_integral_value(rounding="ROUND_CEILING"))
        return cls(millicores)

    def __str__(self) -> str:
        return format_cpu_millicores(self.millicores)

    def _magnitude(self) -> float:
        return self.millicores

    @classmethod
    def _json_schema(cls) -> JsonSchemaValue:
        return _quantity_json_schema()


@dataclass(frozen=True)
class MemoryQuantity(_ApiScalar):
    """Memory in bytes; parsed from ``64Mi``, ``1Gi``, ``500M`` or ``1e9``, rounded up to a whole byte."""

    bytes: int
    _ERROR_KIND: ClassVar[str] = "quantity"

    @classmethod
    def parse(cls, raw: object) -> MemoryQuantity:
        count = parse_quantity(raw)
        return cls(int(count.to_integral_value(rounding="ROUND_CEILING")))

    def __str__(self) -> str:
        return format_memory_bytes(self.bytes)

    def _magnitude(self) -> float:
        return self.bytes

    @classmethod
    def _json_schema(cls) -> JsonSchemaValue:
        return _quantity_json_schema()
