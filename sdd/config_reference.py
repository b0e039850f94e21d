"""The config reference (docs/config.md), rendered from the pydantic models that validate it.

    python -m sdd.config_reference > docs/config.md

One table per config file: every leaf key (dotted through its sections), its type with its
bounds, its default as YAML spells it ("required" where there is none) and the field's
description. The models are the only source; a test compares docs/config.md with this
output, so the reference cannot drift from them.
"""

from __future__ import annotations

import inspect
import types
from typing import Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

COMMAND = "python -m sdd.config_reference > docs/config.md"


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def type_name(annotation) -> str:
    """A type as a reader of the YAML file thinks of it: `a` | `b` for a choice, {fields} for
    a nested mapping, "or null" where a key may be left unset."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named + (["null"] if type(None) in args else []))
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if _is_model(annotation):
        return "{" + ", ".join(annotation.model_fields) + "}"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = {at.Ge: (">=", "ge"), at.Gt: (">", "gt"), at.Le: ("<=", "le"), at.Lt: ("<", "lt"),
           at.MinLen: ("at least", "min_length")}


def _bounds(field: FieldInfo) -> str:
    return ", ".join(f"{word} {getattr(m, attr)}" for m in field.metadata
                     for cls, (word, attr) in _BOUNDS.items() if isinstance(m, cls))


def _yaml(value) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
        return text.removesuffix("\n").removesuffix("\n...")
    raise TypeError(f"no YAML spelling for a default of type {type(value).__name__}")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    return f"`{_yaml(field.get_default(call_default_factory=True))}`"


def _docstring(model: type[BaseModel]) -> str:
    return " ".join(inspect.cleandoc(model.__doc__ or "").split()).replace("``", "`")


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every leaf key of ``model``; a section (a field
    whose type is a model) contributes its own keys under ``<section>.``."""
    out = []
    for name, field in model.model_fields.items():
        key = prefix + name
        if _is_model(field.annotation):
            section = rows(field.annotation, key + ".")
            if field.description:  # what the section is for, e.g. whose resources
                section = [(k, t, d, f"{field.description}: {text}") for k, t, d, text in section]
            out += section
            continue
        kind = type_name(field.annotation)
        bounds = _bounds(field)
        out.append((f"`{key}`", f"{kind}, {bounds}" if bounds else kind, default_text(field), field.description or ""))
    if model.model_config.get("extra") == "allow":
        out.append((f"`{prefix}<option>`", "per architecture", "the architecture's", _docstring(model)))
    return out


def table(model: type[BaseModel]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows(model)]
    return "\n".join(lines)


def markdown() -> str:
    """The whole of docs/config.md."""
    from sdd.config import AugmentConfig, JobConfig

    return f"""# Config reference

Generated from the pydantic models; do not edit by hand. Regenerate with

    {COMMAND}

Both files are YAML, validated before any work starts; unknown keys are errors.

## Job config

`--config` of `pipelines/select_timesteps.py`, `pipelines/distill_all.py` and the `sdd`
commands (`sdd.config.JobConfig`). The `distill` defaults are the method's
(`sdd.distill.DistillConfig`), the shapes-world recipe.

{table(JobConfig)}

## Augment config

`--config` of `pipelines/augment.py` (`sdd.config.AugmentConfig`); `--input`,
`--output`, `--manipulators` and `--format` override it.

{table(AugmentConfig)}
"""


if __name__ == "__main__":
    print(markdown(), end="")
