"""Configuration: pydantic models that hold every default (``models``) and the
YAML loader whose errors name the YAML path and the fix (``load``).

Only ``gateway.app`` and the CLI read the config; other packages receive the
already-validated section they need.
"""
from gateway.config.load import ConfigError, load_config, load_yaml_model
from gateway.config.models import Config

__all__ = ["Config", "ConfigError", "load_config", "load_yaml_model"]
