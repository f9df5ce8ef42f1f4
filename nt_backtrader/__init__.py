"""nt_backtrader: neural trading networks for backtrader, tested by honest walk-forward backtests.

Public surface: load the data (one asset or a universe), run a walk-forward, or take the backtrader pieces (strategy,
sizer, risk brackets, analyzer) into your own script.
"""
from . import metrics
from .bundle import Bundle
from .config import Config, load_config
from .data import load_ohlcv, load_universe
from .errors import UserError
from .plugin import (
    BuyHold,
    NeuralSignal,
    NeuralSizer,
    NeuralStrategy,
    PnLFeedback,
    RiskBrackets,
    SmaCross,
    Tsmom,
    run_backtest,
    with_risk_brackets,
)
from .walkforward import WalkForwardResult, walk_forward

__all__ = ["metrics", "Bundle", "Config", "load_config", "load_ohlcv", "load_universe", "UserError", "BuyHold",
           "NeuralSignal", "NeuralSizer", "NeuralStrategy", "PnLFeedback", "RiskBrackets", "SmaCross", "Tsmom",
           "run_backtest", "with_risk_brackets", "WalkForwardResult", "walk_forward"]
__version__ = "0.1.0"
