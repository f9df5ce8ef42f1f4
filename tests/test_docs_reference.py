"""The documentation site's generated parts: the config reference tables and the comments they read.

The hooks live in docs_hooks/ (loaded by mkdocs, not part of the package); these tests need neither
mkdocs nor griffe, so they run with the test extra alone.
"""
from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path

import pytest

from nt_backtrader import config as config_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs_hooks"))
import config_reference  # noqa: E402
from source_comments import markdown_cell, note, source_comments  # noqa: E402


def section_rows(markdown: str) -> dict[str, dict[str, str]]:
    """Section heading ('Top level', '[data]', ...) -> key -> its table row."""
    sections, current = {}, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:], {})
        elif line.startswith("| `") and current is not None:
            current[line.split("`")[1]] = line
    return sections


def columns(row: str) -> int:
    """Cells of a Markdown table row: pipes outside code spans and not escaped separate them."""
    outside_code = re.sub(r"`[^`]*`", "", row)
    return len(re.findall(r"(?<!\\)\|", outside_code)) - 1


@pytest.fixture(scope="module")
def reference() -> str:
    return config_reference.reference(config_module)


def test_every_key_of_every_section_is_a_row_with_the_code_default(reference):
    sections = section_rows(reference)
    hints = typing.get_type_hints(config_module.Config)
    expected = {"Top level": [f for f in dataclasses.fields(config_module.Config)
                              if not dataclasses.is_dataclass(hints[f.name])]}
    for item in dataclasses.fields(config_module.Config):
        if dataclasses.is_dataclass(hints[item.name]):
            expected[f"[{item.name}]"] = dataclasses.fields(hints[item.name])
    assert list(sections) == list(expected)  # Config's order: top level, data, walkforward, ..., meta
    for heading, fields in expected.items():
        assert list(sections[heading]) == [f.name for f in fields], heading
    # defaults are the dataclasses' own, whatever they are when the site is built
    wf = config_module.WalkForwardConfig()
    assert f"| `{wf.train_bars}` |" in sections["[walkforward]"]["train_bars"]
    assert "| `0.2` |" in sections["[walkforward]"]["val_fraction"]
    assert '| `["sp500"]` |' in sections["[data]"]["dataset"]
    assert "| `unset` |" in sections["[data]"]["start"]
    assert "| `[0.15, 0.05]` |" in sections["[timing]"]["bands"]
    assert "| `str | None` |" in sections["[data]"]["csv_dir"]


def test_comments_beside_under_and_above_a_field_are_its_meaning(reference):
    sections = section_rows(reference)
    # beside, then its continuation line
    assert "validation tail of the train window" in sections["[walkforward]"]["val_fraction"]
    assert "long enough for every network (validate)" in sections["[walkforward]"]["val_fraction"]
    # a comment block above the field, at its indentation, then <br> and the comment beside it
    bands = sections["[timing]"]["bands"]
    assert "The turnover-aware part of the rule" in bands and "<br>no-trade band" in bands
    assert "Costs of some assets" in sections["[backtest]"]["costs"]
    # a knob with a fixed set of values lists them
    assert "Choices: `expanding`, `rolling`" in sections["[walkforward]"]["window"]
    # the next field's note is not the previous field's continuation
    assert "turnover-aware" not in sections["[timing]"]["loss"]


def test_every_row_has_four_cells_although_comments_hold_pipes_and_stars(reference):
    rows = [row for section in section_rows(reference).values() for row in section.values()]
    assert len(rows) == sum(len(dataclasses.fields(c)) for c in (
        config_module.DataConfig, config_module.WalkForwardConfig, config_module.BacktestConfig,
        config_module.StrategyConfig, config_module.TimingConfig, config_module.TrainConfig,
        config_module.SizingConfig, config_module.RiskConfig, config_module.TunerConfig,
        config_module.MetaConfig)) + 1  # + seed
    assert all(columns(row) == 4 for row in rows), [row for row in rows if columns(row) != 4][:1]
    assert "neural \\| buy_hold" in section_rows(reference)["[strategy]"]["name"]


def test_note_rules_on_a_small_source():
    source = '''class A:
    # a group note
    one: int = 1        # beside one
                        # one, continued
    two: int = 2        # beside two
    # a note on three
    three: int = 3
'''
    comments = source_comments(source)
    assert note(comments, 3, 3, 4) == "a group note<br>beside one one, continued"
    assert note(comments, 5, 5, 4) == "beside two"
    assert note(comments, 7, 7, 4) == "a note on three"
    assert markdown_cell("a | b *c* {x: y} <p>") == "a \\| b \\*c\\* \\{x: y\\} &lt;p&gt;"


def test_the_hook_fills_only_its_page_and_insists_on_its_marker():
    class File:
        def __init__(self, src_uri):
            self.src_uri = src_uri

    class Page:
        def __init__(self, src_uri):
            self.file = File(src_uri)

    assert config_reference.on_page_markdown("x", Page("index.md"), None, None) == "x"
    page = config_reference.on_page_markdown(f"# C\n\n{config_reference.MARKER}\n", Page("config.md"), None, None)
    assert config_reference.MARKER not in page and "### [timing]" in page
    with pytest.raises(ValueError, match="lost its marker"):
        config_reference.on_page_markdown("# C\n", Page("config.md"), None, None)
