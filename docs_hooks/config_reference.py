"""MkDocs hook: the configuration reference, generated from nt_backtrader/config.py at build time.

docs/config.md holds the marker below; every build replaces it with one table per config section
(key, type, default, the comment written beside the field in config.py), so the page cannot drift
from the code. Defaults come from the dataclasses themselves, types and comments from the source
(source_comments.py says which comments belong to a field).

Plain functions, no mkdocs import: tests/test_docs_config_reference.py calls them without mkdocs.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import typing

from source_comments import annotated_fields, markdown_cell, source_comments  # mkdocs puts this folder on sys.path

MARKER = "<!-- config-reference -->"
PAGE = "config.md"


def field_notes(source: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Class name -> field name -> (its annotation as written, its comment)."""
    comments = source_comments(source)
    return {node.name: {name: (annotation, comment) for name, annotation, comment in annotated_fields(node, comments)}
            for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}


def default_text(value) -> str:
    """A default as a TOML config writes it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(default_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {default_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def code(text: str) -> str:
    """A code span; Python-Markdown's tables keep a pipe inside one as text, so it needs no escape."""
    return f"`{text}`"


def table(fields: list[dataclasses.Field], notes: dict[str, tuple[str, str]], choices: dict, prefix: str) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for item in fields:
        annotation, comment = notes.get(item.name, (str(item.type), ""))
        default = item.default_factory() if item.default is dataclasses.MISSING else item.default
        meaning = markdown_cell(comment)
        if prefix + item.name in choices:
            listed = ", ".join(code(c) for c in choices[prefix + item.name])
            meaning += ("<br>" if meaning else "") + "Choices: " + listed
        rows.append(f"| {code(item.name)} | {code(annotation)} | {code(default_text(default))} | {meaning} |")
    return "\n".join(rows)


def reference(config_module) -> str:
    """Markdown: the top-level keys, then a section per nested dataclass of Config, in Config's order."""
    notes = field_notes(inspect.getsource(config_module))
    root, choices = config_module.Config, config_module.CHOICES
    hints = typing.get_type_hints(root)
    fields = dataclasses.fields(root)
    top = [f for f in fields if not dataclasses.is_dataclass(hints[f.name])]
    parts = ["### Top level", "", table(top, notes[root.__name__], choices, ""), ""]
    for item in fields:
        cls = hints[item.name]
        if not dataclasses.is_dataclass(cls):
            continue
        parts += [f"### [{item.name}]", ""]
        if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):  # not the signature dataclass writes
            parts += [inspect.cleandoc(cls.__doc__), ""]
        parts += [table(dataclasses.fields(cls), notes.get(cls.__name__, {}), choices, item.name + "."), ""]
    # one block, so that docs/stylesheets/extra.css can keep keys, types and defaults on one line
    return '<div class="config-reference" markdown>\n\n' + "\n".join(parts) + "\n</div>"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs' hook: the marker on docs/config.md becomes the reference."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its marker {MARKER}: put it back where the tables go")
    from nt_backtrader import config as config_module
    return markdown.replace(MARKER, reference(config_module))
