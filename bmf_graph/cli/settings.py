"""Every run setting with its default and its doc, read from the dataclasses of
:mod:`bmf_graph.config` (the docstring under each field), for ``--help``.

A field's doc is the string literal that follows it in the class body; Python keeps no such
attribute docstrings at run time, so they are read from the module's source with :mod:`ast`.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from typing import Any, Iterator

from bmf_graph import config


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass whose fields are each followed by a string literal."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def settings(values: Any = None, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """``(key, value, doc)`` for every setting of a :class:`~bmf_graph.config.Config` (default:
    the dataclass defaults), nested sections as ``env.radius``."""
    values = config.Config() if values is None else values
    docs = field_docs(type(values))
    for f in dataclasses.fields(values):
        value = getattr(values, f.name)
        if dataclasses.is_dataclass(value):
            yield from settings(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, docs.get(f.name, "")


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _plain(doc: str) -> str:
    """reST literals as terminal text: ````x```` -> ```x```."""
    return doc.replace("``", "`")


def settings_help(values: Any = None) -> str:
    """Every setting as ``key=value`` (those of ``values``, default the dataclass defaults;
    ``[default X]`` where they differ) followed by its doc, section by section."""
    values = config.Config() if values is None else values
    defaults = {key: value for key, value, _ in settings()}
    lines, section = [], None
    for key, value, doc in settings(values):
        head = key.split(".")[0] if "." in key else ""
        if head != section:
            section = head
            title = " ".join(((type(getattr(values, head)) if head else type(values)).__doc__ or "").split())
            lines.append(f"\n{head + '.*' if head else 'run'}: {_plain(title)}")
        differs = "" if value == defaults[key] else f"    [default {_show(defaults[key])}]"
        lines.append(f"  {key}={_show(value)}{differs}")
        lines += [f"      {_plain(line)}" for line in doc.splitlines()]
    return "\n".join(lines).lstrip("\n")
