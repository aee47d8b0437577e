"""riskmon: an independent risk and alerting monitor for trading desks."""

__version__ = "0.1.0"
