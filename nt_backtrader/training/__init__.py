"""Training: the shared loop, losses, samples, bracket outcomes and the per-segment trainer. No backtrader."""
