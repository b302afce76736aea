"""``gateway.queue.filethreads``: the spool's blocking calls on long-lived threads
behave as ``asyncio.to_thread`` does for them (result, exception, cancellation)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.queue import filethreads


async def every_thread_at_once() -> list[int]:
    """One call on each spool thread at the same time (each waits for all the
    others): it returns only once every thread is alive and free."""
    barrier = threading.Barrier(filethreads.THREADS, timeout=10)
    return await asyncio.gather(*(filethreads.run(barrier.wait)
                                  for _ in range(filethreads.THREADS)))


async def test_the_result_comes_back_from_another_thread():
    caller = threading.get_ident()
    ran_on = await filethreads.run(threading.get_ident)
    assert ran_on != caller
    assert await filethreads.run(divmod, 17, 5) == (3, 2)


async def test_an_exception_is_raised_in_the_caller():
    def fail():
        raise FileExistsError("taken")

    with pytest.raises(FileExistsError, match="taken"):
        await filethreads.run(fail)


async def test_calls_run_side_by_side_up_to_the_thread_count():
    count = min(filethreads.THREADS, 4)
    barrier = threading.Barrier(count, timeout=10)     # each call waits for the others
    results = await asyncio.gather(*(filethreads.run(barrier.wait) for _ in range(count)))
    assert sorted(results) == list(range(count))


async def test_a_cancelled_caller_leaves_the_call_running_to_its_end():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))

    def slow():
        started.set()
        release.wait(10)
        finished.set()
        return "done"

    task = asyncio.create_task(filethreads.run(slow))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)
    # every thread free again: the one that ran slow() has handed back its outcome
    assert sorted(await every_thread_at_once()) == list(range(filethreads.THREADS))
    assert errors == []                               # nothing was set on the cancelled future


def test_a_call_whose_loop_closed_meanwhile_is_dropped():
    release = threading.Event()
    loop = asyncio.new_event_loop()
    task = loop.create_task(filethreads.run(release.wait, 10))
    loop.run_until_complete(asyncio.sleep(0))          # the job is queued
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    release.set()                                      # the job ends after its loop closed

    # only possible if the thread that ran the job survived it and is free again
    assert sorted(asyncio.run(every_thread_at_once())) == list(range(filethreads.THREADS))
