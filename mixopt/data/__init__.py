"""Run tables: the data contract (schema, readers, validation).

Package rule: ``mixopt.data`` imports only ``mixopt.errors`` (and polars, numpy); every other
package may import it.
"""

from mixopt.data.long import LongLayout
from mixopt.data.public import default_data_dir, load_gadre, load_gemstones, load_olmix, load_regmix
from mixopt.data.readers import FORMATS, read_frame, read_runs, sidecar_path, write_runs
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
    "FORMATS",
    "FLOPS",
    "KNOWN_BENCHMARKS",
    "LongLayout",
    "LOSS",
    "LOSS_PREFIX",
    "MIX_PREFIX",
    "PARAMS",
    "RUN",
    "SCORE_PREFIX",
    "TOKENS",
    "Benchmark",
    "RunTable",
    "default_data_dir",
    "load_gadre",
    "load_gemstones",
    "load_olmix",
    "load_regmix",
    "read_frame",
    "read_runs",
    "sidecar_path",
    "write_runs",
]
