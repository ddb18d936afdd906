"""Typed experiment configs: frozen dataclasses, YAML files and `key.sub=value` overrides.

Frozen dataclasses are the source of truth; YAML and the command line only produce
``dataclasses.replace`` calls on them, so every value passes the same ``__post_init__``
validation whichever way it arrived.  Errors name the offending field in one line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from read_jax.errors import ReadJaxError

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, field: str) -> Any:
    """Convert a YAML / CLI value to a field's annotated type (only the shapes configs use)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, field)
            except ReadJaxError as err:
                errors.append(str(err))
        raise ReadJaxError(errors[0] if errors else f"{field}: cannot parse {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ReadJaxError(f"{field}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ReadJaxError(f"{field}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, field) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ReadJaxError(f"{field}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=field + ".")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ReadJaxError(f"{field}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ReadJaxError(f"{field}: expected {annotation.__name__}, got {value!r}") from None
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _merge(section: Any, data: dict[str, Any], field: str) -> Any:
    """A nested mapping applied onto its section's default, so ``train: {optimizer: {warmup_steps: 2}}``
    keeps the loop's own optimizer defaults rather than the optimizer class's."""
    for key, value in data.items():
        section = _set(section, [key], value, f"{field}.{key}")
    return section


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from a nested dict, rejecting unknown keys by name."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ReadJaxError(f"unknown config field {prefix + unknown[0]!r}")
    kwargs = {}
    for k, v in data.items():
        section = _default(fields[k]) if isinstance(v, dict) else None
        kwargs[k] = (_merge(section, v, prefix + k) if dataclasses.is_dataclass(section)
                     else _coerce(v, hints[k], prefix + k))
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ReadJaxError(f"{prefix or cls.__name__}: {err}") from None


def override(config: T, assignments: list[str]) -> T:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars) to a frozen config."""
    for item in assignments:
        if "=" not in item:
            raise ReadJaxError(f"override {item!r}: expected key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        config = _set(config, key.strip().split("."), value, key.strip())
    return config


def _set(config: Any, path: list[str], value: Any, full: str) -> Any:
    if not dataclasses.is_dataclass(config):
        raise ReadJaxError(f"override {full!r}: {path[0]!r} is not a config section")
    names = {f.name for f in dataclasses.fields(config)}
    if path[0] not in names:
        raise ReadJaxError(f"unknown config field {full!r}")
    if len(path) > 1:
        new = _set(getattr(config, path[0]), path[1:], value, full)
    elif isinstance(value, dict) and dataclasses.is_dataclass(getattr(config, path[0])):
        new = _merge(getattr(config, path[0]), value, full)
    else:
        new = _coerce(value, _hints(type(config))[path[0]], full)
    return dataclasses.replace(config, **{path[0]: new})


def load_yaml(cls: type[T], path: str | Path, overrides: list[str] = ()) -> T:
    path = Path(path)
    if not path.is_file():
        raise ReadJaxError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ReadJaxError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ReadJaxError(f"{path}: expected a mapping at the top level")
    return override(from_dict(cls, data), list(overrides))


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
