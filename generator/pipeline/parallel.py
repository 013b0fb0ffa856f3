"""Spread per-endpoint work over the machine's cores.

Workers are forked, so they share the already loaded and validated
repository; only chunk indices go to them, and only results come back.
`ENDPOINTGEN_JOBS=1` (or a platform without fork) runs everything in-process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
MIN_ITEMS_PER_WORKER = 32
Progress = Callable[[int, int], None] | None  # told (items just done, total items)
_task: Callable[[Sequence[int]], Any] | None = None


def jobs() -> int:
    """How many processes to use: ENDPOINTGEN_JOBS, else the usable CPU count."""
    wanted = os.environ.get("ENDPOINTGEN_JOBS")
    if wanted and wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run(chunk: Sequence[int]) -> Any:
    assert _task is not None
    return _task(chunk)


def map_chunks(task: Callable[[Sequence[int]], T], count: int, progress: Progress = None) -> list[T]:
    """Run `task` over chunks of range(count) (in parallel when it pays); one result per chunk.

    `progress(done, total)` is told of every finished chunk.
    """
    global _task
    workers = min(jobs(), count // MIN_ITEMS_PER_WORKER)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        result = task(range(count))
        if progress:
            progress(count, count)
        return [result]
    size = max(1, count // (workers * 8))  # several chunks per worker keep both busy to the end
    chunks = [range(start, min(start + size, count)) for start in range(0, count, size)]
    _task = task
    try:
        results = []
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for chunk, result in zip(chunks, pool.imap(_run, chunks)):
                results.append(result)
                if progress:
                    progress(len(chunk), count)
        return results
    finally:
        _task = None
