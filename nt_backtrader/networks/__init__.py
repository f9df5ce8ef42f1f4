"""Pure PyTorch networks: no backtrader, no pandas."""
from .meta import MetaLearner
from .risk import RiskNet
from .sizing import PositionSizingNet
from .timing import TimingNet
from .tuner import HyperparameterTunerNet

__all__ = ["TimingNet", "PositionSizingNet", "RiskNet", "MetaLearner", "HyperparameterTunerNet"]
