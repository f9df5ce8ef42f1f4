"""Each asset's trading costs: backtest.costs by asset or by class, else the flat commission and slippage.

The backtest charges them (run_backtest's `costs`) and training may price turnover with them: one table.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from .config import Config
from .datasets import panel_classes
from .errors import ConfigError


def asset_class(name: str) -> str | None:
    """The panel's class of an asset named like one of its tickers (case aside), e.g. 'EURUSD' -> 'currency';
    None for any other asset."""
    return {ticker.casefold(): cls for ticker, cls in panel_classes().items()}.get(name.casefold())


def asset_costs(config: Config, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    """name -> (commission_bps, slippage_bps) per side for each of `names` (give every asset of the universe):
    its own entry in backtest.costs (case aside), else its class's, else backtest.commission_bps and
    backtest.slippage_bps. A key naming neither an asset of `names` nor a class is a ConfigError."""
    names = list(names)
    backtest = config.backtest
    table: dict[str, tuple[float, float]] = {}
    for key, (commission, slippage) in backtest.costs.items():
        if key.casefold() in table:
            raise ConfigError(f"backtest.costs names '{key}' twice (case does not count): keep one entry")
        table[key.casefold()] = (float(commission), float(slippage))
    classes = set(panel_classes().values())
    known = {name.casefold() for name in names} | classes
    for key in backtest.costs:
        if key.casefold() not in known:
            close = difflib.get_close_matches(key, names + sorted(classes), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"backtest.costs names '{key}', which is neither an asset of the data nor an asset "
                              f"class: {hint}name an asset, or one of the classes {', '.join(sorted(classes))}")
    flat = (float(backtest.commission_bps), float(backtest.slippage_bps))
    out = {}
    for name in names:
        cls = asset_class(name)
        out[name] = table.get(name.casefold()) or (table.get(cls) if cls else None) or flat
    return out
