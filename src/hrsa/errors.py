"""Exceptions with messages that name the offending file, key, dataset or position."""


class HRSAError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(HRSAError):
    """A configuration value is missing or invalid (the message names the key)."""


class DataError(HRSAError):
    """An input dataset is empty, malformed or missing (the message names the file)."""


class ModelError(HRSAError):
    """A model cannot be loaded or does not behave as configured."""


class StoreError(HRSAError):
    """An activation store is incomplete, corrupted or inconsistent with its manifest."""


class PairMismatchError(HRSAError):
    """The two models of a pair disagree on tokenization or on the rows of their stores."""
