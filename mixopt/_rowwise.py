"""Per-draw constants applied over rows at numpy speed, and the variance over draws (numpy only).

Prediction works on draw blocks ``g (S, n, c)`` (draws x rows x a few columns) and applies
constants that vary by draw and column only, ``const (S, 1, c)`` (or ``(c,)``). numpy
broadcasts such an operand with an inner loop of ``c`` elements (5 domains or benchmarks),
so an in-place ``g += const`` over 15,000 elements costs ~11 microseconds instead of ~1.5.
:func:`apply_rows` applies the same operation to the same pairs of numbers through a view
``(S, n/q, q·c)`` of ``g`` and the constant tiled ``q`` times along its columns (``q`` the
largest divisor of ``n`` up to :data:`MAX_TILE`), so the inner loop runs over ``q·c``
elements: every result is the very same floating-point operation on the very same operands,
so the numbers are identical; the tiles are kept per constant.

:func:`var_draws` is ``np.var(a, axis=0, ddof=ddof)`` with the same ufunc calls in the same
order (sum over axis 0, divide by the count, subtract, square, sum, divide by the degrees of
freedom), without its Python bookkeeping: identical numbers, tested. :class:`Workspace` keeps a
call's large scratch arrays for its next block.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

#: largest tile factor (the inner loop then runs over up to MAX_TILE x columns elements)
MAX_TILE = 128
#: constants whose tiles are kept (per cache dict; a tile of 30 draws x 128 rows x 5 columns is 150 KiB)
_MAX_TILES = 32


@functools.lru_cache(maxsize=4096)
def tile_factor(n: int) -> int:
    """The largest divisor of ``n`` that is at most :data:`MAX_TILE` (1 for ``n <= 1``)."""
    for q in range(min(int(n), MAX_TILE), 1, -1):
        if n % q == 0:
            return q
    return 1


def apply_rows(ufunc: Callable[..., np.ndarray], g: np.ndarray, const: np.ndarray, tiles: dict, out: np.ndarray | None = None) -> np.ndarray:
    """``ufunc(g, const, out=out)`` for ``g (S, n, c)`` and ``const (S, 1, c)`` / ``(1, 1, c)`` / ``(c,)``.

    Args:
        ufunc: a binary numpy ufunc (``np.add``, ``np.multiply``, ...).
        g: ``(S, n, c)`` C-contiguous float64 array.
        const: the constant; it must not change while it is kept in ``tiles`` (the cached
            model arrays qualify: they are rebuilt, never written, when the fit changes).
        tiles: the cache of tiled constants (a dict owned by the caller, bounded here).
        out: ``(S, n, c)`` C-contiguous result (``g`` itself for in place); a new array if None.

    Returns:
        ``out``: the same numbers as ``ufunc(g, const)`` with numpy's broadcasting.
    """
    S, n, c = g.shape
    if out is None:
        out = np.empty_like(g)
    q = tile_factor(n)
    if q == 1 or not (g.flags.c_contiguous and out.flags.c_contiguous):
        return ufunc(g, const, out=out)
    key = (id(const), q)
    hit = tiles.get(key)
    if hit is None or hit[0] is not const:
        c3 = np.asarray(const, dtype=np.float64).reshape(-1, 1, c)
        tile = np.ascontiguousarray(np.tile(c3, (1, 1, q)))
        tile.setflags(write=False)
        if len(tiles) >= _MAX_TILES:  # bounded: start over (a tile is rebuilt in microseconds)
            tiles.clear()
        hit = tiles[key] = (const, tile)
    shape = (S, n // q, q * c)
    ufunc(g.reshape(shape), hit[1], out=out.reshape(shape))
    return out


def var_draws(a: np.ndarray, ddof: int = 1, work: np.ndarray | None = None) -> np.ndarray:
    """``np.var(a, axis=0, ddof=ddof)`` for float64 ``a (S, ...)`` with ``S > ddof``: the same numbers
    (``work``: an optional scratch array shaped like ``a`` for the squared deviations)."""
    S = a.shape[0]
    mean = np.add.reduce(a, axis=0, keepdims=True)
    np.true_divide(mean, S, out=mean)
    x = np.subtract(a, mean, out=work)
    np.square(x, out=x)
    out = np.add.reduce(x, axis=0)
    np.true_divide(out, S - ddof, out=out)
    return out


def swap01(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = a.transpose(1, 0, 2)`` for ``a (n, S, c)`` into ``out (S, n, c)``, both C-contiguous float64:
    the same bytes, copied as ``(n, S)`` elements of ``c`` doubles each (a void dtype view), ~2x faster than
    numpy's strided copy with its ``c``-element inner loop (other layouts: that copy)."""
    n, S, c = a.shape
    if out.shape != (S, n, c):
        raise ValueError(f"out must be ({S}, {n}, {c}) for a of shape {a.shape}, got {out.shape}.")
    if c and a.dtype == out.dtype == np.float64 and a.flags.c_contiguous and out.flags.c_contiguous:
        v = np.dtype(f"V{8 * c}")
        np.copyto(out.view(v).reshape(S, n), a.view(v).reshape(n, S).T)
    else:
        np.copyto(out, a.transpose(1, 0, 2))
    return out


class Workspace:
    """Scratch arrays reused by the blocks of one call, by name.

    A fresh float64 array above glibc's mmap threshold (128 KiB, moved up and down by the
    allocator's history) is mapped and unmapped each time, and every one of its pages then
    faults on first write: on 256-row draw blocks (300 KiB arrays) that doubled the cost of an
    interval prediction once the allocator was in that state. Blocks of one call ask for
    their large temporaries here instead, so they are allocated once per call.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float64 array ``shape`` (its contents undefined), the same memory for the same name."""
        size = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.size < size:
            buf = self._bufs[name] = np.empty(size)
        return buf[:size].reshape(shape)


__all__ = ["MAX_TILE", "Workspace", "apply_rows", "swap01", "tile_factor", "var_draws"]
