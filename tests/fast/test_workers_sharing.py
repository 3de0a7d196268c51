"""What workers share, in memory: the event bus (:mod:`caddytw.admin.peers`), upstream
health messages (:mod:`caddytw.handlers.reverse_proxy.sharedhealth`) between two simulated
workers, and the supervisor's relay and metrics bookkeeping."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from caddytw.admin import peers
from caddytw.handlers.reverse_proxy.config import ActiveHealthConfig, PassiveHealthConfig
from caddytw.handlers.reverse_proxy.health import ActiveHealthChecker, PassiveHealth, ProbeResult
from caddytw.handlers.reverse_proxy.sharedhealth import TOPIC, SharedHealth
from caddytw.handlers.reverse_proxy.upstreams import HostRegistry, Upstream
from caddytw.server.workers.supervisor import (
    CONFIG_IN_FD,
    MAX_EVENT,
    WorkerSupervisor,
    _WorkerProtocol,
)


@pytest.fixture
def sent() -> Iterator[list[bytes]]:
    """Connect the bus to a list (as a worker connects it to the supervisor)."""
    lines: list[bytes] = []
    peers.connect(lines.append)
    yield lines
    peers.connect(None)


# -- peers ---------------------------------------------------------------------------


def test_publish_does_nothing_outside_a_worker() -> None:
    assert not peers.connected()
    peers.publish("t", {"x": 1})  # no sender: no error, nothing to see


def test_published_messages_reach_subscribers_of_their_topic(sent: list[bytes]) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    peers.subscribe("t1", lambda m: got.append(("t1", m)))
    peers.subscribe("t2", lambda m: got.append(("t2", m)))
    peers.publish("t1", {"x": 1})
    assert [json.loads(line) for line in sent] == [{"topic": "t1", "x": 1}]
    assert b"\n" not in sent[0]
    peers.deliver(sent[0])
    assert got == [("t1", {"x": 1})]


def test_a_failing_listener_does_not_stop_the_others(sent: list[bytes]) -> None:
    got: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    peers.subscribe("t3", broken)
    peers.subscribe("t3", got.append)
    peers.deliver(b'{"topic": "t3", "v": 2}')
    assert got == [{"v": 2}]


def test_a_bound_listener_goes_away_with_its_object() -> None:
    class Table:
        def __init__(self, got: list[dict[str, Any]]) -> None:
            self.got = got

        def receive(self, message: dict[str, Any]) -> None:
            self.got.append(message)

    got: list[dict[str, Any]] = []
    table = Table(got)
    peers.subscribe("t4", table.receive)
    peers.deliver(b'{"topic": "t4"}')
    del table
    gc.collect()
    peers.deliver(b'{"topic": "t4"}')
    assert got == [{}]


@given(st.binary(max_size=200))
def test_junk_lines_are_ignored(line: bytes) -> None:
    peers.deliver(line)


# -- shared upstream health ----------------------------------------------------------


class Worker:
    """One simulated worker: its own clock, host table, handler upstream and health."""

    def __init__(self, address: str = "10.0.0.1:80", max_fails: int = 3) -> None:
        self.clock = Clock()
        self.registry = HostRegistry()
        self.upstream = Upstream(
            address, "10.0.0.1", 80, self.registry.acquire(address), max_fails=max_fails
        )
        self.passive = PassiveHealth(
            PassiveHealthConfig(fail_duration=10, max_fails=max_fails), self.clock
        )
        self.shared = SharedHealth(self.registry, self.clock)


def relay(sent: list[bytes], to: Worker) -> None:
    """The supervisor's job: hand what one worker published to another."""
    for line in sent:
        message = json.loads(line)
        assert message.pop("topic") == TOPIC
        to.shared.receive(message)
    sent.clear()


def test_failures_add_up_across_workers_and_expire(sent: list[bytes]) -> None:
    a, b = Worker(), Worker()
    a.passive.count_failure(a.upstream)
    relay(sent, b)
    b.passive.count_failure(b.upstream)
    relay(sent, a)
    assert a.upstream.healthy() and b.upstream.healthy()  # 2 of 3
    a.passive.count_failure(a.upstream)
    relay(sent, b)
    assert not a.upstream.healthy() and not b.upstream.healthy()
    assert a.upstream.state.fails == b.upstream.state.fails == 3
    # Down everywhere: more failures change nothing for the others and are not sent.
    a.passive.count_failure(a.upstream)
    assert sent == []
    # Each worker forgets the failures after fail_duration, the shared ones too.
    a.clock.advance(10)
    b.clock.advance(10)
    assert a.upstream.state.fails == b.upstream.state.fails == 0


def test_active_transitions_are_shared_and_corrected_by_local_probes(sent: list[bytes]) -> None:
    a, b = Worker(), Worker()
    config = ActiveHealthConfig(interval=5, fails=1, passes=1)
    answers = {"a": ProbeResult(error="refused"), "b": ProbeResult(200)}

    def probe_for(name: str) -> Any:
        return lambda upstream: succeed(answers[name])

    checkers = {
        name: ActiveHealthChecker([w.upstream], config, probe_for(name), w.clock)
        for name, w in (("a", a), ("b", b))
    }
    done: Deferred[Any] = checkers["a"].check_all()
    assert done.called and not a.upstream.healthy()
    relay(sent, b)
    assert not b.upstream.healthy()  # b took a's finding without probing
    # b's own probe disagrees: b flips back and says so; a takes it too.
    checkers["b"].check_all()
    assert b.upstream.healthy()
    relay(sent, a)
    assert a.upstream.healthy()
    # No echo: a probe agreeing with the current state publishes nothing.
    answers["a"] = ProbeResult(200)
    checkers["a"].check_all()
    assert sent == []


@given(
    st.dictionaries(
        st.sampled_from(["address", "failed_for", "healthy", "other"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(["10.0.0.1:80", "10.9.9.9:80", ""]),
        ),
    )
)
def test_any_message_leaves_the_table_sane(message: dict[str, Any]) -> None:
    worker = Worker()
    worker.shared.receive(dict(message))
    state = worker.upstream.state
    assert state.fails in (0, 1)
    assert isinstance(state.active_healthy, bool)
    assert "10.9.9.9:80" not in worker.registry.hosts
    worker.clock.advance(24 * 3600)  # any shared failure expires within a day
    assert state.fails == 0


# -- supervisor ----------------------------------------------------------------------


class FakeTransport:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written: list[tuple[int, bytes]] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))


def supervisor_with(count: int) -> tuple[WorkerSupervisor, list[FakeTransport]]:
    supervisor = WorkerSupervisor(lambda i, live: ["x"], count, reactor=MemoryReactorClock())
    transports = [FakeTransport(100 + i) for i in range(count)]
    supervisor.workers = dict(enumerate(transports))
    return supervisor, transports


def test_events_go_to_every_other_worker_and_configs_are_kept() -> None:
    supervisor, transports = supervisor_with(3)
    protocol = _WorkerProtocol(supervisor, 1)
    protocol.childDataReceived(3, b'event {"topic":"t"}\nconfig {"apps"')
    protocol.childDataReceived(3, b":{}}\nevent " + b"x" * MAX_EVENT + b"\nnonsense\n")
    protocol.childDataReceived(1, b"event {}\n")  # stdout is not the link
    expected = [(CONFIG_IN_FD, b'event {"topic":"t"}\n'), (CONFIG_IN_FD, b'config {"apps":{}}\n')]
    assert transports[0].written == transports[2].written == expected
    assert transports[1].written == []
    assert supervisor.live_config is not None
    assert Path(supervisor.live_config).read_bytes() == b'{"apps":{}}'


def test_a_dead_worker_stops_counting_in_live_gauges_but_keeps_its_counts(
    tmp_path: Path,
) -> None:
    supervisor, _ = supervisor_with(2)
    supervisor.metrics_dir = str(tmp_path)
    names = ["gauge_livesum_100.db", "gauge_livemin_100.db", "counter_100.db"]
    names += ["histogram_100.db", "gauge_livesum_101.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    supervisor._forget_metrics(100)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["counter_100.db", "gauge_livesum_101.db", "histogram_100.db"]
