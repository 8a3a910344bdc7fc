"""A progress bar over the named steps of a long command (``mixopt fit`` on a big table).

The bar (tqdm, on stderr) names the step running now and its elapsed time, refreshed every
second by a small background thread, so a fit of a million-row table is visibly alive.
Disabled (no output at all) when ``enabled`` is False -- the CLI passes ``not --json``. When
stderr is not a terminal (a log file, a pipe), each step is one plain line instead of a bar.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from mixopt._terminal import ProgressLines, is_terminal


@contextmanager
def step_bar(steps: Sequence[str], *, enabled: bool = True, desc: str = "mixopt") -> Iterator[Callable[[], None]]:
    """Context manager yielding ``done()``: call it after each of ``steps`` finishes."""
    if not enabled:
        yield lambda: None
        return
    if not is_terminal():  # a log file or a pipe: one plain line per step, no redrawn bar
        lines = ProgressLines(len(steps), desc=desc, unit="step")
        lines.set_description_str(f"{desc}: step 1/{len(steps)} {steps[0]}" if steps else desc)
        i = 0

        def step_done() -> None:
            nonlocal i
            i += 1
            if i < len(steps):
                lines.set_description_str(f"{desc}: step {i + 1}/{len(steps)} {steps[i]}")

        try:
            yield step_done
        finally:
            if i >= len(steps):
                lines.set_description_str(f"{desc}: done")
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(steps), desc=desc, unit="step", leave=False, bar_format="{desc} [{elapsed}]")
    state = {"i": 0}

    def label() -> None:
        i = state["i"]
        now = steps[i] if i < len(steps) else "done"
        bar.set_description_str(f"{desc}: step {min(i + 1, len(steps))}/{len(steps)} {now}")

    label()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()

    def done() -> None:
        state["i"] += 1
        bar.update(1)
        label()

    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=2.0)
        bar.close()


__all__ = ["step_bar"]
