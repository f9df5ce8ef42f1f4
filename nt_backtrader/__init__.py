"""nt_backtrader: neural trading networks for backtrader, tested by honest walk-forward backtests.

Public surface: load the data, run a walk-forward, or take the backtrader pieces into your own script.
"""
from .config import Config, load_config
from .data import load_ohlcv
from .errors import UserError
from .plugin import BuyHold, PnLFeedback, SmaCross, Tsmom, run_backtest
from .walkforward import WalkForwardResult, walk_forward

__all__ = ["Config", "load_config", "load_ohlcv", "UserError", "BuyHold", "PnLFeedback", "SmaCross", "Tsmom",
           "run_backtest", "WalkForwardResult", "walk_forward"]
__version__ = "0.1.0"
