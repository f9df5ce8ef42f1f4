"""The comments written beside code, as this project documents its fields and parameters.

A field's note is the comment on its own line(s), the comment lines right under it indented past it
(its continuation), and the comment lines right above it at its own indentation (a note on it, or on
a group it starts):

    # The turnover-aware part of the rule ...       <- above, at the field's indentation
    bands: tuple = (0.15, 0.05)  # no-trade band    <- beside
                                 # ... continued    <- continuation, indented past the field

Used by the config reference (config_reference.py) and the fields and params tables
(griffe_backtrader.py) of the documentation site.
"""
from __future__ import annotations

import ast
import io
import tokenize
import typing


class Comment(typing.NamedTuple):
    col: int
    text: str
    alone: bool  # the only thing on its line: a continuation or a note above, not a comment beside code


def source_comments(source: str) -> dict[int, Comment]:
    """Row (1-based) -> the comment on that row."""
    comments, code_rows = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            comments[row] = Comment(col, token.string.lstrip("#").strip(), alone=row not in code_rows)
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_rows.update(range(token.start[0], token.end[0] + 1))
    return comments


def note(comments: dict[int, Comment], first: int, last: int, col: int) -> str:
    """The note of the code on rows first..last that starts at column `col`; a note above it comes first,
    separated by <br>."""
    above, row = [], first - 1
    while row in comments and comments[row].alone and comments[row].col == col:
        above.insert(0, comments[row].text)
        row -= 1
    beside = [comments[r].text for r in range(first, last + 1) if r in comments and not comments[r].alone]
    row = last + 1
    while row in comments and comments[row].alone and comments[row].col > col:
        beside.append(comments[row].text)
        row += 1
    text = " ".join(beside)
    return " ".join(above) + (f"<br>{text}" if text else "") if above else text


def annotated_fields(node: ast.ClassDef, comments: dict[int, Comment]) -> list[tuple[str, str, str]]:
    """(name, annotation as written, note) of each annotated field in the class's own body."""
    return [(item.target.id, ast.unparse(item.annotation),
             note(comments, item.lineno, item.end_lineno, item.col_offset))
            for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]


def markdown_cell(text: str) -> str:
    """Comment text made safe inside a Markdown table cell: no column breaks, stray emphasis or tags
    (the <br> that `note` puts between a note above and the comment beside stays a line break)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("&lt;br&gt;", "<br>")
    # braces too: attr_list would read a trailing {feed name: either} as HTML attributes and drop it
    for char in "|*{}":
        text = text.replace(char, "\\" + char)
    return text
