"""MkDocs hook: generated reference tables, so the docs cannot drift from the code.

- ``<!-- settings-table -->`` becomes a table of every field of ``tacit.core.settings.TacitSettings``:
  environment variable, type (with its bounds), default and the field's description.
- ``<!-- import-contracts -->`` becomes the import-linter contracts of ``pyproject.toml``.

Registered under ``hooks:`` in ``mkdocs.yml``; runs on every ``mkdocs build`` and ``mkdocs serve``.
"""

from __future__ import annotations

import logging
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import SecretStr
from pydantic.aliases import AliasChoices
from pydantic.fields import FieldInfo

SETTINGS_MARKER = "<!-- settings-table -->"
CONTRACTS_MARKER = "<!-- import-contracts -->"

log = logging.getLogger("mkdocs.hooks.config_reference")


def _repo_root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def on_config(config: Any) -> Any:
    """Make the checkout importable, also when Tacit is not installed in the docs environment."""
    root = str(_repo_root(config))
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if CONTRACTS_MARKER in markdown:
        markdown = markdown.replace(CONTRACTS_MARKER, contracts(_repo_root(config) / "pyproject.toml"))
    return markdown


# --- settings ---


def settings_table() -> str:
    from tacit.core.settings import TacitSettings

    prefix = TacitSettings.model_config.get("env_prefix", "")
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    undocumented = []
    for name, field in TacitSettings.model_fields.items():
        if not field.description:
            undocumented.append(name)
        cells = (_variables(prefix, name, field), _type(field), _default(field), field.description or "")
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    if undocumented:
        log.info("settings without a description: %s", ", ".join(undocumented))
    return "\n".join(rows)


def _variables(prefix: str, name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
    elif isinstance(alias, str):
        names = [alias]
    else:
        names = [f"{prefix}{name}".upper()]
    return " or ".join(f"`{variable}`" for variable in names)


def _type(field: FieldInfo) -> str:
    text = _type_name(field.annotation)
    bounds = [_bound(constraint) for constraint in field.metadata]
    bounds = [bound for bound in bounds if bound]
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        text = " or ".join(_type_name(arg) for arg in present)
        return f"{text}, optional" if len(present) < len(args) else text
    if origin is typing.Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])} (JSON)"
    if annotation is SecretStr:
        return "secret string"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _bound(constraint: Any) -> str:
    symbols = {annotated_types.Ge: ("≥", "ge"), annotated_types.Gt: (">", "gt"),
               annotated_types.Le: ("≤", "le"), annotated_types.Lt: ("<", "lt")}
    for kind, (symbol, attribute) in symbols.items():
        if isinstance(constraint, kind):
            return f"{symbol} {getattr(constraint, attribute)}"
    return ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(map(str, value))}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    """Table cells: no line breaks, and a pipe that is not a column separator."""
    return text.replace("\n", " ").replace("|", "\\|")


# --- import-linter contracts ---


def contracts(pyproject: Path) -> str:
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    blocks = [f"Root package: `{config['root_package']}`."]
    for contract in config.get("contracts", []):
        blocks.append(_contract(contract))
    return "\n\n".join(blocks)


def _layer(layer: str) -> str:
    """``a | b``: independent siblings (neither may import the other); ``a : b``: siblings that may."""
    for separator, note in (("|", "independent: none imports another"), (":", "may import each other")):
        if separator in layer:
            names = ", ".join(f"`{name.strip()}`" for name in layer.split(separator))
            return f"{names} ({note})"
    return f"`{layer.strip()}`"


def _contract(contract: dict[str, Any]) -> str:
    kind = contract["type"]
    head = f"**{contract['name']}** (`{kind}`)"
    if kind == "layers":
        lines = [f"{index}. {_layer(layer)}" for index, layer in enumerate(contract["layers"], start=1)]
        return head + ": each layer may import only the layers below it, top first.\n\n" + "\n".join(lines)
    if kind == "forbidden":
        sources = ", ".join(f"`{module}`" for module in contract["source_modules"])
        forbidden = ", ".join(f"`{module}`" for module in contract["forbidden_modules"])
        return f"{head}: {sources} may not import {forbidden}."
    if kind == "acyclic_siblings":
        ancestors = ", ".join(f"`{module}`" for module in contract["ancestors"])
        return (f"{head}: no import cycle between siblings under {ancestors}: between its sub-packages, "
                "and between the modules inside each of them.")
    details = ", ".join(f"{key} = `{value}`" for key, value in contract.items() if key not in ("name", "type"))
    return f"{head}: {details}."
