"""The gate keeps requests the spacing apart from the moment the previous one went out."""

from __future__ import annotations

import itertools
import threading
import time

from quotesource.send_gate import SendGate


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_next_request_waits_out_the_spacing_from_when_the_previous_one_left():
    fake = FakeTime()
    gate = SendGate(0.02, clock=fake.clock, sleep=fake.sleep)
    with gate.turn():
        fake.now += 0.005  # the first write took 5 ms: the spacing counts from its end
    fake.now += 0.003
    with gate.turn():
        pass
    fake.now += 0.5  # long after: no wait
    with gate.turn():
        pass
    assert fake.slept == [0.017]


def test_threads_that_arrive_together_leave_one_spacing_apart():
    gate = SendGate(0.01)
    left: list[float] = []
    start = threading.Barrier(5)

    def send() -> None:
        start.wait()
        with gate.turn():
            left.append(time.monotonic())

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left.sort()
    assert len(left) == 5
    assert all(later - earlier >= 0.01 for earlier, later in itertools.pairwise(left))
