"""Exceptions with messages that name the offending file, key, dataset or position."""

from __future__ import annotations


class HRSAError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(HRSAError):
    """A configuration value is missing or invalid (the message names the key).

    An error about a config key reads ``config key <dotted.key>: <problem>``; build it with
    :func:`config_error` (or :meth:`ConfigError.at`) so every stage words it alike
    (tests/test_errors.py keeps it so)."""

    @classmethod
    def at(cls, key: str, problem: str) -> ConfigError:
        """The error about config key ``key`` (dotted, e.g. ``training.data.scale``)."""
        return cls(f"config key {key}: {problem}")


def config_error(key: str, problem: str) -> ConfigError:
    """``ConfigError("config key <key>: <problem>")``: the one wording of a bad config key."""
    return ConfigError.at(key, problem)


class DataError(HRSAError):
    """An input dataset is empty, malformed or missing (the message names the file)."""


class ModelError(HRSAError):
    """A model cannot be loaded or does not behave as configured."""


class StoreError(HRSAError):
    """An activation store is incomplete, corrupted or inconsistent with its manifest."""


class PairMismatchError(HRSAError):
    """The two models of a pair disagree on tokenization or on the rows of their stores."""


class LockError(HRSAError):
    """A work directory is locked by another live writer (the message names its pid and host)."""
