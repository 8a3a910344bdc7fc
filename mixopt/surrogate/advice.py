"""True advice when a mixture law has more parameters than the runs can support.

A stage-1 law of FLP-M / DML has one parameter per mixture domain plus a few shared ones,
so with many domains (64) and few runs (64) no law may be identifiable. The advice names
how many runs *each* form needs, which forms need fewer than the one that failed, and
what works with the runs at hand -- instead of naming the form that just failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from mixopt.errors import ConfigError
from mixopt.laws.mixture import STAGE1_LAWS, make_stage1_law


def runs_needed(sources: Sequence[str], *, vary_compute: bool, ratio_total: float = 1.0) -> dict[str, int]:
    """Fewest runs (final checkpoints) each stage-1 form needs: its parameter count."""
    out = {}
    for form in STAGE1_LAWS:
        kw = {"shared_exponent": True} if form == "flpm_additive" else {}
        try:
            law = make_stage1_law(form, list(sources), vary_compute=vary_compute, reference=1e18, ratio_total=ratio_total, **kw)
        except ConfigError:  # not applicable to these runs (e.g. an N,D form at one compute scale)
            continue
        out[form + (" (shared_exponent)" if kw else "")] = law.n_params
    return out


def too_few_runs_message(form: str, n_params: int, n_runs: int, sources: Sequence[str], *, vary_compute: bool,
                         ratio_total: float = 1.0) -> str:
    """The FitError text for ``n_runs < n_params`` of stage-1 form ``form``."""
    need = runs_needed(sources, vary_compute=vary_compute, ratio_total=ratio_total)
    fewer = {f: p for f, p in need.items() if p < n_params and not f.startswith(form + " ") and f != form}
    fits = {f: p for f, p in fewer.items() if p <= n_runs}
    table = ", ".join(f"{f} >= {p}" for f, p in sorted(need.items(), key=lambda kv: kv[1]))
    text = (
        f"FLP-M stage 1 ({form!r}) has {n_params} parameters per loss domain ({len(sources)} mixture domains) but only "
        f"{n_runs} runs (final checkpoints): it needs at least {n_params} runs. Runs needed per stage-1 form: {table}. "
    )
    if fits:
        best = min(fits, key=fits.get)
        shared = " with shared_exponent=true" if "shared" in best else ""
        method = " (--method dml)" if best == "dml" else ""
        text += f"With {n_runs} runs, use stage1={best.split(' ')[0]!r}{shared}{method}. "
    elif fewer:
        best = min(fewer, key=fewer.get)
        text += (f"{best} needs fewer ({fewer[best]}) but still more than {n_runs}. ")
    else:
        text += "No other stage-1 form needs fewer runs. "
    if not fits:
        text += (
            f"Either train at least {min(need.values()) - n_runs} more run(s), merge rarely varied domains, or use "
            "--method regmix (kernel ridge: no per-domain parameters, works with any number of runs)."
        )
    return text


__all__ = ["runs_needed", "too_few_runs_message"]
