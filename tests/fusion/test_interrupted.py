"""A draining server: new runs refused, running ones finish or are saved as interrupted, nothing lost."""

import asyncio

import pytest

import workbench as wb
from workbench.events import MemberToken, RunDone
from workbench.shutdown import RUNS, SHUTDOWN_REASON, ShuttingDownError
from workbench.specs import Member


@pytest.fixture
def store(tmp_path):
    return wb.RunStore(tmp_path / "runs.sqlite")


@pytest.fixture(autouse=True)
def reopen():
    yield
    RUNS.reopen()


async def test_drain_records_a_run_cut_short_with_what_its_members_wrote(remote, store):
    slow = [Member(remote("reply=one two three four five six seven eight;chunk_delay=0.4", name="slow-a")),
            Member(remote("reply=fast answer", name="fast-b"))]
    events, drained = [], None
    async for ev in wb.fuse_stream("q", slow, mode="vote", store=store):
        events.append(ev)
        if isinstance(ev, MemberToken) and ev.member == 0 and drained is None:
            drained = asyncio.ensure_future(asyncio.to_thread(RUNS.drain, 0.2))
    report = await drained
    assert (report.finished, report.interrupted) == (0, 1)
    result = events[-1].result
    assert isinstance(events[-1], RunDone) and result.interrupted == SHUTDOWN_REASON
    stored = store.load(result.run_id)  # saved whole: the finished member and the partial one
    assert stored.interrupted == SHUTDOWN_REASON and stored.degraded and stored.stopped == "shutdown"
    a, b = stored.rounds[0]
    assert b.ok and b.text == "fast answer"
    assert not a.ok and a.kind == "interrupted" and a.text.startswith("one") and "eight" not in a.text
    assert store.list()[0]["status"] == "interrupted"
    with pytest.raises(ShuttingDownError, match="shutting down"):
        await wb.fuse("q", slow, mode="vote")


async def test_a_run_that_finishes_within_the_grace_period_is_stored_as_done(remote, store):
    pool = [Member(remote("reply=x y z;chunk_delay=0.1", name="m"))]
    run = asyncio.ensure_future(wb.fuse("q", pool, mode="vote", store=store))
    while RUNS.in_flight == 0:
        await asyncio.sleep(0.01)
    report = await asyncio.to_thread(RUNS.drain, 30)
    result = await run
    assert (report.finished, report.interrupted) == (1, 0)
    assert not result.interrupted and result.final_answer == "x y z"
    assert store.list()[0]["status"] == "done"


async def test_a_stopped_run_is_kept_as_interrupted(remote, store):
    pool = [Member(remote("reply=a b c d e f;chunk_delay=0.3", name="m"))]

    async def consume():
        async for ev in wb.fuse_stream("q", pool, mode="vote", store=store):
            if isinstance(ev, MemberToken):
                started.set()

    started = asyncio.Event()
    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()  # the page's Stop button
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if store.list():
            break
        await asyncio.sleep(0.05)
    row = store.list()[0]
    assert row["status"] == "interrupted"
    kept = store.load(row["run_id"])
    assert "cancelled" in kept.interrupted and kept.rounds[0][0].text.startswith("a")
    assert kept.stopped == "cancelled"
