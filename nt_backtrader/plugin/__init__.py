"""The only package that imports backtrader: strategies, sizer, brackets, analyzer, feeds and the runner."""
from .analyzer import PnLFeedback
from .backtest import BacktestResult, run_backtest
from .base import SegmentStrategy, TargetStrategy
from .brackets import RiskBrackets, with_risk_brackets
from .classical import BuyHold, SmaCross, Tsmom
from .journal import Decision, DecisionJournal
from .live import LiveReplay, live_replay
from .neural import NeuralStrategy
from .position import PositionStrategy, PositionTarget
from .signal import NeuralSignal
from .sizer import NeuralSizer

__all__ = ["PnLFeedback", "BacktestResult", "run_backtest", "SegmentStrategy", "TargetStrategy", "RiskBrackets",
           "with_risk_brackets", "BuyHold", "SmaCross", "Tsmom", "NeuralStrategy", "PositionStrategy", "PositionTarget",
           "NeuralSignal", "NeuralSizer", "Decision", "DecisionJournal", "LiveReplay", "live_replay"]
