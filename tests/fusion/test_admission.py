"""A full server's run slots: runs wait in a bounded line instead of being refused, and each slot that frees goes
to the waiting caller who has been served least (so a visitor who fuses now and then is not starved by clients who
keep the server full); the line's limits, a caller who leaves, a drain and callers on other threads' loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from workbench.errors import BusyError
from workbench.shutdown import RunTracker, ShuttingDownError


async def hold(tracker: RunTracker, owner: str, release: asyncio.Event, total: int = 1, wait_s: float = 10,
               max_waiting: int = 8, per_owner: int | None = 1, log: list | None = None) -> None:
    """One run as fuse_stream makes it: admit, start, run until ``release``, end."""
    adm = await tracker.admit(owner, per_owner, total, wait_s, max_waiting)
    task = asyncio.ensure_future(release.wait())
    token = tracker.start(task, owner, per_owner, total, admission=adm)
    if log is not None:
        log.append(owner)
    try:
        await task
    finally:
        tracker.end(token)


async def one_run_in_flight(tracker: RunTracker) -> tuple[asyncio.Event, list[str], asyncio.Future]:
    """A run of ip:a holding the server's one slot until the event is set: (the event, the start log, its task)."""
    busy, log = asyncio.Event(), []
    blocker = asyncio.ensure_future(hold(tracker, "ip:a", busy, log=log))
    await until(lambda: log == ["ip:a"])
    return busy, log, blocker


async def until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_full_server_lets_a_run_wait_for_the_next_free_slot():
    tracker = RunTracker()
    first, second = asyncio.Event(), asyncio.Event()
    log: list[str] = []
    a = asyncio.ensure_future(hold(tracker, "ip:a", first, log=log))
    await until(lambda: log == ["ip:a"])
    b = asyncio.ensure_future(hold(tracker, "ip:b", second, log=log))
    await asyncio.sleep(0.05)
    assert log == ["ip:a"] and tracker.in_flight == 1  # b waits, it is not refused
    first.set()
    await until(lambda: log == ["ip:a", "ip:b"])
    second.set()
    await asyncio.gather(a, b)
    assert tracker.in_flight == 0


async def test_the_slot_goes_to_the_waiting_caller_who_used_the_server_least_not_the_first_in_line():
    tracker = RunTracker()
    # ip:heavy has had a run in flight for the last 0.3 s
    done = asyncio.Event()
    first = asyncio.ensure_future(hold(tracker, "ip:heavy", done))
    await asyncio.sleep(0.3)
    done.set()
    await first
    busy, rest = asyncio.Event(), asyncio.Event()
    log: list[str] = []
    blocker = asyncio.ensure_future(hold(tracker, "ip:other", busy, log=log))
    await until(lambda: log == ["ip:other"])
    heavy = asyncio.ensure_future(hold(tracker, "ip:heavy", rest, log=log))  # first in line
    await asyncio.sleep(0.02)
    light = asyncio.ensure_future(hold(tracker, "ip:light", rest, log=log))
    await asyncio.sleep(0.02)
    busy.set()
    await until(lambda: len(log) == 2)
    assert log == ["ip:other", "ip:light"]
    rest.set()
    await asyncio.gather(blocker, heavy, light)
    assert log == ["ip:other", "ip:light", "ip:heavy"]


async def test_a_full_line_takes_a_light_newcomer_and_refuses_the_heaviest_waiter_instead():
    tracker = RunTracker()
    busy, log, blocker = await one_run_in_flight(tracker)
    heavy = asyncio.ensure_future(tracker.admit("ip:heavy", 1, 1, 10, 1))  # waits, and waiting counts as use
    await asyncio.sleep(0.2)
    light = asyncio.ensure_future(tracker.admit("ip:light", 1, 1, 10, 1))
    with pytest.raises(BusyError, match="your place in it went to a visitor who has used the server less"):
        await heavy
    # a second newcomer who has used it no less than the one waiting is refused at once
    await asyncio.sleep(0.05)
    with pytest.raises(BusyError, match="1 waiting, its limit is 1"):
        await tracker.admit("ip:light", 2, 1, 10, 1)
    busy.set()
    await blocker
    adm = await light
    assert adm.granted
    tracker.release(adm)
    assert not tracker._waiting and not tracker._granted


async def test_a_newcomer_does_not_jump_the_line():
    tracker = RunTracker()
    busy, log, blocker = await one_run_in_flight(tracker)
    rest = asyncio.Event()
    waiting = asyncio.ensure_future(hold(tracker, "ip:b", rest, log=log))
    await asyncio.sleep(0.02)
    # a run started without admit (a re-judge, an evaluation) while others wait is refused, not slipped in
    with pytest.raises(BusyError, match="busy"):
        tracker.start(asyncio.ensure_future(asyncio.sleep(0)), "ip:c", 1, 1)
    busy.set()
    rest.set()
    await asyncio.gather(blocker, waiting)
    assert log == ["ip:a", "ip:b"]


async def test_the_line_has_a_length_and_a_wait_limit_and_the_per_visitor_limit_counts_waiting_runs():
    tracker = RunTracker()
    done = asyncio.Event()
    used = asyncio.ensure_future(hold(tracker, "ip:c", done))  # ip:c has used the server for 0.3 s
    await asyncio.sleep(0.3)
    done.set()
    await used
    busy, log, blocker = await one_run_in_flight(tracker)
    waiter = asyncio.ensure_future(tracker.admit("ip:b", 1, 1, 10, 1))
    await asyncio.sleep(0.02)
    with pytest.raises(BusyError, match=r"1 runs in flight, its limit is 1, and 1 waiting, its limit is 1"):
        await tracker.admit("ip:c", 1, 1, 10, 1)
    with pytest.raises(BusyError, match=r"you already have 1 run\(s\) in flight"):  # b's waiting run counts
        await tracker.admit("ip:b", 1, 1, 10, 5)
    # check() (before images are decoded) refuses only what admit would refuse at once
    tracker.check("ip:c", 1, 1, max_waiting=5)
    with pytest.raises(BusyError, match="waiting"):
        tracker.check("ip:c", 1, 1, max_waiting=1)
    tracker.check("ip:new", 1, 1, max_waiting=1)  # it would take ip:b's place
    waiter.cancel()
    t0 = time.monotonic()
    with pytest.raises(BusyError, match=r"no run slot came free in 0.2 s"):
        await tracker.admit("ip:e", 1, 1, 0.2, 5)
    assert 0.15 < time.monotonic() - t0 < 2
    busy.set()
    await blocker
    assert not tracker._waiting and not tracker._granted


async def test_a_caller_who_leaves_the_line_or_fails_before_starting_gives_its_slot_on():
    tracker = RunTracker()
    busy, log, blocker = await one_run_in_flight(tracker)
    rest = asyncio.Event()
    leaver = asyncio.ensure_future(tracker.admit("ip:b", 1, 1, 10, 5))
    await asyncio.sleep(0.02)
    stayer = asyncio.ensure_future(hold(tracker, "ip:c", rest, log=log))
    await asyncio.sleep(0.02)
    leaver.cancel()  # the client disconnected while waiting
    busy.set()
    await until(lambda: log == ["ip:a", "ip:c"])
    rest.set()
    await asyncio.gather(blocker, stayer)
    # a slot held and then not used (the call failed before its run started) is given back
    adm = await tracker.admit("ip:d", 1, 1, 10, 5)
    tracker.release(adm)
    adm = await tracker.admit("ip:e", 1, 1, 0.5, 5)
    assert adm is not None and adm.granted
    tracker.release(adm)


async def test_a_drain_tells_those_waiting_at_once():
    tracker = RunTracker()
    busy, log, blocker = await one_run_in_flight(tracker)
    waiter = asyncio.ensure_future(tracker.admit("ip:b", 1, 1, 30, 5))
    await asyncio.sleep(0.02)
    drained = asyncio.ensure_future(asyncio.to_thread(tracker.drain, 5))
    t0 = time.monotonic()
    with pytest.raises(ShuttingDownError):
        await waiter
    assert time.monotonic() - t0 < 2
    busy.set()
    await blocker
    report = await drained
    assert report.finished == 1 and not tracker._granted


def test_a_slot_freed_on_one_event_loop_wakes_a_caller_waiting_on_another():
    """Gradio's handlers, the API and notebooks run on loops of their own threads: the line is one for all."""
    tracker = RunTracker()
    started = threading.Event()
    free = threading.Event()
    got: list[str] = []

    def run_first():
        async def main():
            release = asyncio.Event()
            adm = await tracker.admit("ip:a", 1, 1, 10, 5)
            token = tracker.start(asyncio.ensure_future(release.wait()), "ip:a", 1, 1, admission=adm)
            started.set()
            await asyncio.to_thread(free.wait, 10)
            tracker.end(token)
        asyncio.run(main())

    def run_second():
        async def main():
            adm = await tracker.admit("ip:b", 1, 1, 10, 5)
            tracker.start(asyncio.ensure_future(asyncio.sleep(0)), "ip:b", 1, 1, admission=adm)
            got.append("ip:b")
        asyncio.run(main())

    a = threading.Thread(target=run_first)
    a.start()
    assert started.wait(10)
    b = threading.Thread(target=run_second)
    b.start()
    time.sleep(0.1)
    assert not got
    free.set()
    a.join(10)
    b.join(10)
    assert got == ["ip:b"]


async def test_a_refusal_counts_as_use_so_a_client_retrying_against_a_full_line_is_not_light():
    tracker = RunTracker()
    busy, log, blocker = await one_run_in_flight(tracker)
    waiter = asyncio.ensure_future(tracker.admit("ip:w", 1, 1, 10, 1))
    await asyncio.sleep(0.05)
    newcomer = asyncio.ensure_future(tracker.admit("ip:new", 1, 1, 10, 1))  # lighter: takes ip:w's place
    with pytest.raises(BusyError, match="your place"):
        await waiter
    for _ in range(3):  # ip:w retries at once, again and again: each refusal weighs a second
        with pytest.raises(BusyError, match="waiting, its limit is 1"):
            await tracker.admit("ip:w", 1, 1, 10, 1)
    with tracker._cond:
        assert tracker._used("ip:w", time.monotonic()) > 3.5
        assert tracker._used("ip:new", time.monotonic()) < 1
    busy.set()
    await blocker
    tracker.release(await newcomer)


async def test_a_busy_server_keeps_one_slot_in_eight_for_light_visitors():
    tracker = RunTracker()
    warm = asyncio.Event()
    first = asyncio.ensure_future(hold(tracker, "ip:heavy", warm, total=8))
    await asyncio.sleep(1.0)  # ip:heavy has been busy for half of its (minimum two-second) span
    warm.set()
    await first
    release = [asyncio.Event() for _ in range(7)]
    log: list[str] = []
    holders = [asyncio.ensure_future(hold(tracker, f"ip:h{k}", release[k], total=8, log=log)) for k in range(7)]
    await until(lambda: len(log) == 7)
    heavy = asyncio.ensure_future(tracker.admit("ip:heavy", 1, 8, 10, 8))
    await asyncio.sleep(0.05)
    assert not heavy.done()  # the eighth slot is free, but kept for light visitors
    t0 = time.monotonic()
    light = await tracker.admit("ip:light", 1, 8, 10, 8)
    assert light.granted and time.monotonic() - t0 < 0.05
    tracker.release(light)
    assert not heavy.done()
    release[0].set()  # one of the seven ends: now ip:heavy gets a slot
    adm = await asyncio.wait_for(heavy, 5)
    assert adm.granted
    tracker.release(adm)
    for e in release:
        e.set()
    await asyncio.gather(*holders)
