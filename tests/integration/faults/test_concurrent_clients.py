"""Many clients at once, each with its own connection, for a fixed time, making a mix of verbs: queries
(list, dominfo, dumpxml, networks, pools, version) and changes (define and undefine of their own
domains, start, suspend, resume and destroy of shared ones, which they race each other for).

A refusal the lifecycle explains (start of a running domain, resume of a running one…) is an answer;
a server error (HTTP 500, ``internal error``) or a request that never completes (the client's read
timeout, a client thread that does not finish: a deadlock) is a failure. Latency is measured per
request on the client side and reported as p50/p99.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pyvirt.client.api import Connection
from pyvirt.errors import PyvirtError, TimedOut
from pyvirt.qemu.process import qemus_of
from tests.support.daemon import Daemon
from tests.support.guest import domain_xml
from tests.support.stress import report, scale

pytestmark = pytest.mark.slow
SHARED = [f"load-{i}" for i in range(4)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def worker(
    daemon: Daemon,
    index: int,
    until: float,
    latencies: list[tuple[str, float]],
    outcome: Counter[str],
    lock: threading.Lock,
) -> None:
    rng = random.Random(index)
    own = f"own-{index:02d}"
    own_xml = domain_xml(own, memory_mib=32)
    mine: list[tuple[str, float]] = []
    counts: Counter[str] = Counter()
    with daemon.connect() as conn:
        while time.monotonic() < until:
            verb, call = pick(conn, rng, own, own_xml)
            t0 = time.monotonic()
            try:
                call()
                counts["ok"] += 1
            except TimedOut:
                counts["hung"] += 1
            except PyvirtError as err:
                counts["server_error" if "internal error" in str(err) else "refused"] += 1
                if "internal error" in str(err):
                    counts[f"server_error: {verb}: {err}"] += 1
            mine.append((verb, time.monotonic() - t0))
    with lock:
        latencies.extend(mine)
        outcome.update(counts)


def pick(conn: Connection, rng: random.Random, own: str, own_xml: str) -> tuple[str, Callable[[], object]]:
    shared = rng.choice(SHARED)
    choices: list[tuple[int, str, Callable[[], object]]] = [
        (20, "list", conn.list_domains),
        (15, "dominfo", lambda: conn.domain(shared).info()),
        (10, "dumpxml", lambda: conn.domain(shared).xml()),
        (5, "net-list", conn.list_networks),
        (5, "pool-list", conn.list_pools),
        (5, "version", conn.version),
        (8, "define", lambda: conn.define_xml(own_xml)),
        (6, "undefine", lambda: conn.domain(own).undefine()),
        (6, "start", lambda: conn.domain(shared).start()),
        (6, "destroy", lambda: conn.domain(shared).destroy()),
        (7, "suspend", lambda: conn.domain(shared).suspend()),
        (7, "resume", lambda: conn.domain(shared).resume()),
    ]
    weights = [w for w, _, _ in choices]
    _, verb, call = rng.choices(choices, weights)[0]
    return verb, call


def test_concurrent_clients_mixed_verbs(daemon: Daemon, tmp_path: Path) -> None:
    clients, seconds = scale(10, 50), scale(10, 60)
    with daemon.connect() as conn:
        for name in SHARED:
            conn.define_xml(domain_xml(name, memory_mib=64))
        conn.domain(SHARED[0]).start()
    latencies: list[tuple[str, float]] = []
    outcome: Counter[str] = Counter()
    lock = threading.Lock()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=worker, args=(daemon, i, until, latencies, outcome, lock), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    stuck = sum(thread.is_alive() for thread in threads)
    # Still serving, and what it says matches the processes.
    with daemon.connect() as conn:
        running = {d["name"] for d in conn.list_domains() if d["state"] != "shut off"}
        assert running == set(qemus_of(daemon.run_dir).values()) == set(daemon.qemu_pids())
        for name in running:
            conn.domain(name).destroy()
    assert not qemus_of(daemon.run_dir)
    errors = sorted(key for key in outcome if key.startswith("server_error: "))
    total = len(latencies)
    every = [t for _, t in latencies]
    by_verb: dict[str, list[float]] = {}
    for verb, t in latencies:
        by_verb.setdefault(verb, []).append(t)
    report(
        "concurrent_clients",
        {
            "clients": clients,
            "seconds": seconds,
            "requests": total,
            "requests_per_second": round(total / seconds, 1),
            "answered": outcome["ok"],
            "refused_by_the_lifecycle": outcome["refused"],
            "latency_p50_ms": ms(percentile(every, 0.50)),
            "latency_p99_ms": ms(percentile(every, 0.99)),
            "latency_max_ms": ms(max(every)),
            "server_errors": outcome["server_error"],
            "hung_requests": outcome["hung"],
            "stuck_clients": stuck,
            "per_verb_count_p50_p99_ms": {
                verb: [len(times), ms(percentile(times, 0.5)), ms(percentile(times, 0.99))]
                for verb, times in sorted(by_verb.items())
            },
        },
    )
    assert not stuck and not outcome["hung"], "a client never got its answer: deadlock"
    assert not errors, errors
    assert outcome["ok"] > clients, "hardly anything was answered: the test tested nothing"
