"""Configs are data: nested dataclasses (schema.py) read from composed YAML files with `--set`
overrides (loading.py)."""

from pseudovad.config.loading import (
    PACKAGED_CONFIGS,
    build_config,
    config_names,
    config_to_dict,
    describe_configs,
    environment_overrides,
    flat,
    load_config,
    parse_override,
    read_yaml,
    save_config,
    short_repr,
    without_training_files,
)
from pseudovad.config.schema import LAYOUTS, Chosen, Config, component, option

__all__ = [
    "LAYOUTS", "PACKAGED_CONFIGS", "Chosen", "Config", "build_config", "component", "config_names", "config_to_dict",
    "describe_configs", "environment_overrides", "flat", "load_config", "option", "parse_override", "read_yaml",
    "save_config", "short_repr", "without_training_files",
]
