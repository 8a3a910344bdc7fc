"""Scaling laws: stateless forms (:class:`Law`) and the robust fitter (:class:`LawFitter`).

Quick start::

    from mixopt.laws import LawFitter, PowerLawWithOffset
    fit = LawFitter(PowerLawWithOffset(), n_bootstrap=200).fit(flops, loss, groups=run_ids)
    lower, upper = fit.predict_interval(new_flops, level=0.9)

Package rule: ``mixopt.laws`` imports only ``mixopt.errors`` and ``mixopt.data`` (and numpy,
scipy); surrogates, searches and reports import it.
"""

from mixopt.laws.base import Law, Param, check_reference, log_scaled, reference_for
from mixopt.laws.fitter import DEFAULT_MAX_STARTS, GroupResample, LawFitter, combine_interval, predictive_std
from mixopt.laws.forms import (
    DEFAULT_FLOPS_REFERENCE,
    DEFAULT_PARAMS_REFERENCE,
    DEFAULT_TOKENS_REFERENCE,
    LAWS,
    ChinchillaLaw,
    ChinchillaTiedLaw,
    FPPowerLaw,
    Linear,
    PowerLawWithOffset,
    PurePowerLaw,
    Sigmoid,
    make_law,
    register_law,
)

__all__ = [
    "DEFAULT_FLOPS_REFERENCE",
    "DEFAULT_MAX_STARTS",
    "DEFAULT_PARAMS_REFERENCE",
    "DEFAULT_TOKENS_REFERENCE",
    "LAWS",
    "ChinchillaLaw",
    "ChinchillaTiedLaw",
    "FPPowerLaw",
    "GroupResample",
    "Law",
    "LawFitter",
    "Linear",
    "Param",
    "PowerLawWithOffset",
    "PurePowerLaw",
    "Sigmoid",
    "check_reference",
    "combine_interval",
    "log_scaled",
    "make_law",
    "predictive_std",
    "reference_for",
    "register_law",
]
