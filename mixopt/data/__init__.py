"""Run tables: the data contract (schema, readers, validation)."""

from mixopt.data.table import (
    FLOPS,
    KNOWN_BENCHMARKS,
    LOSS,
    LOSS_PREFIX,
    MIX_PREFIX,
    PARAMS,
    RUN,
    SCORE_PREFIX,
    TOKENS,
    Benchmark,
    RunTable,
)

__all__ = [
    "FLOPS",
    "KNOWN_BENCHMARKS",
    "LOSS",
    "LOSS_PREFIX",
    "MIX_PREFIX",
    "PARAMS",
    "RUN",
    "SCORE_PREFIX",
    "TOKENS",
    "Benchmark",
    "RunTable",
]
