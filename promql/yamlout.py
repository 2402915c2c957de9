"""A small YAML writer for rule files: block scalars for expressions, comments kept.

Rule files are read by people as much as by Prometheus, so expressions are written as
literal blocks (``|-``), descriptions folded (``>-``) and every rule carries its comment.
Only the shapes rule files use are supported (mappings, lists, strings, numbers); the tests
check that ``yaml.safe_load`` reads back exactly the data that was written::

    >>> print(scalar("promdrift-5m", 0), scalar("a: b", 0), scalar("true", 0))
    promdrift-5m "a: b" "true"
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any, List, Mapping, Sequence

__all__ = ["scalar", "write_groups", "write_mapping"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_:./=+-]*( [A-Za-z0-9_:./=+()'-]+)*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def scalar(value: Any, indent: int, fold: bool = False, block: bool = False) -> str:
    """``value`` as a YAML scalar, for a key at ``indent`` spaces (``block``: a literal
    block even for one line, as expressions are written)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    pad = " " * (indent + 2)
    if "\n" in text or (block and text.strip()):
        if text != text.strip() or any(line != line.rstrip() for line in text.split("\n")):
            return json.dumps(text, ensure_ascii=False)
        return "|-\n" + "\n".join(pad + line if line else "" for line in text.split("\n"))
    if fold and len(text) > 60 and "  " not in text and text == text.strip():
        lines = textwrap.wrap(text, width=max(40, 96 - len(pad)), break_long_words=False,
                              break_on_hyphens=False)
        if " ".join(lines) == text:
            return ">-\n" + "\n".join(pad + line for line in lines)
    if _PLAIN.match(text) and text.lower() not in _RESERVED and ": " not in text \
            and not re.match(r"^[-+.0-9]", text) and " #" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str, indent: int) -> List[str]:
    if not text:
        return []
    pad = " " * indent
    return [f"{pad}# {line}".rstrip() for line in textwrap.wrap(text, width=96 - indent - 2)]


def write_mapping(data: Mapping[str, Any], indent: int, fold_keys: Sequence[str] = ()) -> List[str]:
    """Lines of a block mapping of scalars and nested mappings at ``indent``."""
    pad = " " * indent
    out: List[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            if not value:
                out.append(f"{pad}{scalar(key, indent)}: {{}}")
                continue
            out.append(f"{pad}{scalar(key, indent)}:")
            out.extend(write_mapping(value, indent + 2, fold_keys))
        elif isinstance(value, (list, tuple)):
            out.append(f"{pad}{scalar(key, indent)}: "
                       f"[{', '.join(scalar(v, indent) for v in value)}]")
        else:
            out.append(f"{pad}{scalar(key, indent)}: {scalar(value, indent, key in fold_keys)}")
    return out


def write_groups(groups: Sequence[Any], indent: int = 0, key: str = "groups") -> List[str]:
    """Lines of ``groups:`` (``rules.Group`` objects) at ``indent``."""
    pad = " " * indent
    out = [f"{pad}{key}:"]
    for g in groups:
        out.extend(_comment(g.doc, indent + 2))
        out.append(f"{pad}  - name: {scalar(g.name, indent + 4)}")
        if g.interval:
            out.append(f"{pad}    interval: {scalar(g.interval, indent + 4)}")
        out.append(f"{pad}    rules:")
        for r in g.rules:
            out.extend(_comment(r.doc, indent + 6))
            first = True
            for k, v in r.as_dict().items():
                lead = f"{pad}      - " if first else f"{pad}        "
                first = False
                if isinstance(v, Mapping):
                    out.append(f"{lead}{k}:")
                    out.extend(write_mapping(v, indent + 10, fold_keys=("description",)))
                else:
                    out.append(f"{lead}{k}: {scalar(v, indent + 8, block=(k == 'expr'))}")
    return out
