"""The one way settings are read back: an object's ``__init__`` arguments from its attributes.

As in scikit-learn, ``__init__`` stores each argument under its own name, so the settings are
derived from the signature rather than listed a second time (surrogates' ``get_params``,
:meth:`mixopt.laws.LawFitter.get_params`, trainers' ``settings``).
"""

from __future__ import annotations

import inspect
from typing import Any


def init_params(obj: object) -> dict[str, Any]:
    """``{name: value}`` of every named ``__init__`` argument of ``obj``'s class, read from ``obj``.

    ``*args`` and ``**kwargs`` are not named settings and are left out; a class that takes its
    settings that way (or stores them transformed) overrides the method that calls this.

    Raises:
        AttributeError: ``__init__`` did not store an argument under its own name.
    """
    params = inspect.signature(type(obj).__init__).parameters.values()
    out = {}
    for p in params:
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(obj, p.name):
            raise AttributeError(f"{type(obj).__name__}.__init__ takes {p.name!r} but does not store it as "
                                 f"self.{p.name}; store every argument under its own name so settings can be read back.")
        out[p.name] = getattr(obj, p.name)
    return out


__all__ = ["init_params"]
