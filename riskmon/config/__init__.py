from riskmon.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from riskmon.config.schema import MonitorConfig

__all__ = ["ConfigError", "ConfigIssue", "MonitorConfig", "load_config", "parse_config"]
