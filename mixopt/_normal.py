"""The standard normal quantile ``Φ⁻¹(p)`` (``ndtri``) in numpy, without importing scipy.

``scipy.special`` costs ~0.15 CPU-s to import (it pulls in its array-API layer), more than
a resumed search spends on everything it computes; mixopt needs only ``ndtri`` from it.
This is the Cephes algorithm that ``scipy.special.ndtri`` implements (Cephes Math Library,
S. L. Moshier, 3-clause BSD; the same coefficients and evaluation order): a rational
approximation in ``y - 0.5`` on the centre (``exp(-2) < p < 1 - exp(-2)``) and in
``1 / sqrt(-2 log p)`` on the tails. Here it equals ``scipy.special.ndtri`` bit for bit on
350,000 points across ``(0, 1)`` (down to 1e-300 and up to ``1 - 1e-16``); the test
(``tests/test_normal.py``) allows relative 1e-15, for a libm whose ``log`` rounds differently.
It is ``-inf`` / ``inf`` at 0 / 1 and NaN outside ``[0, 1]`` (as scipy's, without its warning).
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np

_S2PI = 2.50662827463100050242e0  # sqrt(2 pi)
_EXP_M2 = 0.13533528323661269189  # exp(-2)

# approximation for 0 <= |y - 0.5| <= 3/8
_P0 = (-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1, 1.39312609387279679503e1,
       -1.23916583867381258016e0)
_Q0 = (1.0, 1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1, -2.25462687854119370527e2,
       2.00260212380060660359e2, -8.20372256168333339912e1, 1.59056225126211695515e1, -1.18331621121330003142e0)
# z = sqrt(-2 log y) between 2 and 8, i.e. y between exp(-2) and exp(-32)
_P1 = (4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1, 4.40805073893200834700e1,
       1.46849561928858024014e1, 2.18663306850790267539e0, -1.40256079171354495875e-1, -3.50424626827848203418e-2,
       -8.57456785154685413611e-4)
_Q1 = (1.0, 1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1, 1.50425385692907503408e1,
       2.50464946208309415979e0, -1.42182922854787788574e-1, -3.80806407691578277194e-2, -9.33259480895457427372e-4)
# z between 8 and 64, i.e. y between exp(-32) and exp(-2048)
_P2 = (3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0, 1.33303460815807542389e0,
       2.01485389549179081538e-1, 1.23716634817820021358e-2, 3.01581553508235416007e-4, 2.65806974686737550832e-6,
       6.23974539184983293730e-9)
_Q2 = (1.0, 6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0, 2.16236993594496635890e-1,
       1.34204006088543189037e-2, 3.28014464682127739104e-4, 2.89247864745380683936e-6, 6.79019408009981274425e-9)


def _polevl(x: Any, coef: tuple[float, ...]) -> Any:
    """``coef[0]·x^N + ... + coef[N]`` by Horner's rule (Cephes ``polevl``)."""
    out = x * 0.0
    for c in coef:
        out = out * x + c
    return out


def _scalar(p: float) -> float:
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if not 0.0 < p < 1.0:
        return math.nan
    negate = True
    y = p
    if y > 1.0 - _EXP_M2:
        y = 1.0 - y
        negate = False
    if y > _EXP_M2:
        y = y - 0.5
        y2 = y * y
        x = y + y * (y2 * _polevl(y2, _P0) / _polevl(y2, _Q0))
        return x * _S2PI
    x = math.sqrt(-2.0 * math.log(y))
    x0 = x - math.log(x) / x
    z = 1.0 / x
    x1 = z * _polevl(z, _P1) / _polevl(z, _Q1) if x < 8.0 else z * _polevl(z, _P2) / _polevl(z, _Q2)
    x = x0 - x1
    return -x if negate else x


def _array(p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, np.nan)
    with np.errstate(all="ignore"):
        upper = p > 1.0 - _EXP_M2
        y = np.where(upper, 1.0 - p, p)
        centre = (y > _EXP_M2) & (p > 0.0) & (p < 1.0)
        tail = (y <= _EXP_M2) & (p > 0.0) & (p < 1.0)
        if centre.any():
            yc = y[centre] - 0.5
            y2 = yc * yc
            out[centre] = (yc + yc * (y2 * _polevl(y2, _P0) / _polevl(y2, _Q0))) * _S2PI
        if tail.any():
            x = np.sqrt(-2.0 * np.log(y[tail]))
            x0 = x - np.log(x) / x
            z = 1.0 / x
            x1 = np.where(x < 8.0, z * _polevl(z, _P1) / _polevl(z, _Q1), z * _polevl(z, _P2) / _polevl(z, _Q2))
            out[tail] = np.where(upper[tail], 1.0, -1.0) * (x0 - x1)
    out[p == 0.0] = -np.inf
    out[p == 1.0] = np.inf
    return out


@overload
def ndtri(p: float) -> float: ...
@overload
def ndtri(p: np.ndarray) -> np.ndarray: ...
def ndtri(p: Any) -> Any:
    """``Φ⁻¹(p)``, the standard normal's ``p`` quantile, elementwise (a float for a scalar)."""
    if np.ndim(p) == 0:
        return _scalar(float(p))
    return _array(np.asarray(p, dtype=np.float64))


__all__ = ["ndtri"]
