"""Griffe extension: backtrader classes on the API page as this project documents them.

- A class whose fields carry comments (a dataclass such as WalkForwardResult) gets a table of them:
  field, type, the comment written beside it.
- A class with backtrader `params` gets a table of them (its own, then those it inherits from the
  project's classes it extends): name, default, the comment beside it, since backtrader documents a
  parameter by its tuple and this project by the comment beside it.
- A class with no docstring of its own shows its module's where that one is about it: the project
  documents most public classes at the top of their module ("NeuralStrategy: the timing network
  decides, ..."), and a module's docstring is the class's too when the class has no commented fields.

mkdocstrings loads this file by path (mkdocs.yml: extensions), so its folder is put on sys.path here.
"""
from __future__ import annotations

import ast
import os
import sys

import griffe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_comments import annotated_fields, markdown_cell, note, source_comments  # noqa: E402


def class_node(cls: griffe.Class) -> tuple[ast.ClassDef | None, dict]:
    """The class's own syntax tree and its module's comments."""
    source = cls.module.source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls.name:
            # griffe counts a decorated class from its first decorator
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if first <= cls.lineno <= node.end_lineno:
                return node, source_comments(source)
    return None, {}


def commented_fields(cls: griffe.Class) -> list[tuple[str, str, str]]:
    """(name, annotation, comment) of the annotated fields in cls's own body; none if no field has a comment."""
    node, comments = class_node(cls)
    rows = annotated_fields(node, comments) if node else []
    return rows if any(comment for _, _, comment in rows) else []


def declared_params(cls: griffe.Class) -> list[tuple[str, str, str]]:
    """(name, default as written, comment) of the `params = ((name, default), ...)` in cls's own body."""
    node, comments = class_node(cls)
    rows = []
    for item in node.body if node else []:
        if (isinstance(item, ast.Assign) and [getattr(t, "id", None) for t in item.targets] == ["params"]
                and isinstance(item.value, ast.Tuple)):
            for pair in item.value.elts:
                if isinstance(pair, ast.Tuple) and len(pair.elts) == 2 and isinstance(pair.elts[0], ast.Constant):
                    rows.append((pair.elts[0].value, ast.unparse(pair.elts[1]),
                                 note(comments, pair.lineno, pair.end_lineno, pair.col_offset)))
    return rows


def all_params(cls: griffe.Class, seen: set[str] | None = None) -> list[tuple[str, str, str]]:
    """Its own params, then its bases' (the project's classes only), each name once: the nearest wins."""
    seen = set() if seen is None else seen
    rows = [row for row in declared_params(cls) if row[0] not in seen]
    seen.update(row[0] for row in rows)
    for base in cls.bases:
        path = getattr(base, "canonical_path", str(base))
        try:
            parent = cls.modules_collection.get_member(path)
        except (KeyError, ValueError, AttributeError):
            continue  # backtrader's own classes are not loaded: their params are backtrader's documentation
        if isinstance(parent, griffe.Alias):
            try:
                parent = parent.final_target
            except griffe.AliasResolutionError:
                continue
        if isinstance(parent, griffe.Class):
            rows += all_params(parent, seen)
    return rows


def table(title: str, header: tuple[str, str], rows: list[tuple[str, str, str]]) -> str:
    lines = [title, "", f"| {header[0]} | {header[1]} | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{value}` | {markdown_cell(comment)} |" for name, value, comment in rows]
    return "\n".join(lines)


def docstring_text(cls: griffe.Class) -> str:
    """Its own docstring, else its module's where that one is about it; then its fields and params tables."""
    fields, params = commented_fields(cls), all_params(cls)
    text = cls.docstring.value if cls.docstring else ""
    module_doc = cls.module.docstring.value if cls.module.docstring else ""
    if not text and (module_doc.startswith(f"{cls.name}:") or not fields):
        text = module_doc
    if fields:
        text += "\n\n" + table("**Fields**:", ("field", "type"), fields)
    if params:
        text += "\n\n" + table("**backtrader params**, given as keyword arguments "
                               "(`cerebro.addstrategy(Class, name=value)`):", ("param", "default"), params)
    return text.strip()


def classes(module: griffe.Module):
    for member in module.members.values():
        if isinstance(member, griffe.Module):
            yield from classes(member)
        elif isinstance(member, griffe.Class):
            yield member


class BacktraderParams(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for cls in list(classes(pkg)):
            text = docstring_text(cls)
            if text and (not cls.docstring or text != cls.docstring.value):
                cls.docstring = griffe.Docstring(text, parent=cls)
