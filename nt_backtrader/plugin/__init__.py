"""The only package that imports backtrader: strategies, sizer, analyzer, feeds and the runner."""
from .analyzer import PnLFeedback
from .backtest import BacktestResult, run_backtest
from .base import TargetStrategy
from .classical import BuyHold, SmaCross, Tsmom

__all__ = ["PnLFeedback", "BacktestResult", "run_backtest", "TargetStrategy", "BuyHold", "SmaCross", "Tsmom"]
