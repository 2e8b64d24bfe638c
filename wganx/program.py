"""Deprecated: ``wganx.program`` became :mod:`wganx.algorithm`, which holds the same names.

Kept for one minor release (:mod:`wganx.deprecation`); import from :mod:`wganx.algorithm`.
"""
from .deprecation import moved

__getattr__ = moved(__name__, {name: f"wganx.algorithm.{name}" for name in (
    "Program", "critic_objective", "generator_objective", "EMA_PREFIX", "ema_name", "ema_decay_at",
    "split_params")})
