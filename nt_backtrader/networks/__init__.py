"""Pure PyTorch networks: no backtrader, no pandas. Each is rebuilt from (kind, args) in a bundle."""
from .risk import RiskNet
from .sizing import PositionSizingNet
from .timing import TimingNet

NETWORKS = {"timing": TimingNet, "sizing": PositionSizingNet, "risk": RiskNet}

__all__ = ["TimingNet", "PositionSizingNet", "RiskNet", "NETWORKS"]
