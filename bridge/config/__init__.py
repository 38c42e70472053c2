"""Configuration: one typed schema, a YAML loader that reports every problem at once, and
the frozen `Config` tree the rest of the program reads.

    config = load_config("bridge.yaml", overrides={"listen.port": 0})
    config.listen.port, config.data_dir, config.upstream.imap.host
"""

from .loader import ConfigError, Problem, check_file, load_config, schema_doc
from .model import (
    Config,
    Endpoint,
    FolderSync,
    ListenConfig,
    LoggingConfig,
    SecurityConfig,
    SyncConfig,
    UpstreamConfig,
)
from .schema import default_data_dir, is_loopback

__all__ = [
    "Config",
    "ConfigError",
    "Endpoint",
    "FolderSync",
    "ListenConfig",
    "LoggingConfig",
    "Problem",
    "SecurityConfig",
    "SyncConfig",
    "UpstreamConfig",
    "check_file",
    "default_data_dir",
    "is_loopback",
    "load_config",
    "schema_doc",
]
