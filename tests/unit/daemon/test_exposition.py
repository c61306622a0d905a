"""The exposition writer against prometheus_client's own: the same families give the same text."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from pyvirt.daemon.exposition import Family, Requests, counter, gauge, number, render

VALUES = [0, 1, 3, 0.5, 1.5e-7, 123456, 1234567, 123456789012, 2**63, 12345678901234567890, -4, -1.5e9]
VALUES += [float("inf"), float("-inf"), 1e300, 4096 * 1024, 1765000000.123456]


def test_numbers_as_prometheus_client_writes_them() -> None:
    from prometheus_client.utils import floatToGoString

    rng = random.Random(7)
    samples = VALUES + [rng.random() * 10 ** rng.randint(-12, 22) for _ in range(2000)]
    samples += [rng.randint(0, 1 << 64) for _ in range(2000)]
    for value in samples:
        assert number(value) == floatToGoString(value), value
    assert number(float("nan")) == "NaN"


class _Collector:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def test_families_as_prometheus_client_writes_them() -> None:
    """Label names in any order (the text sorts them), values needing escapes, counters, gauges,
    families with no labels and with no samples."""
    rng = random.Random(3)
    names = ["web01", 'odd"name', "back\\slash", "new\nline", "plain", "été"]
    ours: list[Family] = []
    theirs: list[Metric] = []
    for index, (kind, labels) in enumerate(
        [
            ("gauge", ["domain"]),
            ("counter", ["domain", "mode"]),
            ("counter", ["domain", "device"]),  # sorted: device before domain
            ("counter", ["interface", "domain", "alpha"]),
            ("gauge", []),
            ("gauge", ["state"]),
        ]
    ):
        name, doc = f"pyvirt_test_{index}", f"Help {index} with a \\ and a\nnewline"
        ours.append((counter if kind == "counter" else gauge)(name, doc, *labels))
        family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, doc, labels=labels)
        theirs.append(family)
        for _ in range(0 if index == 5 else 1 if not labels else 20):
            values = [rng.choice(names) for _ in labels]
            value = rng.choice([*VALUES, rng.random() * 1e12])
            ours[-1].add(values, value)
            family.add_metric(values, value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(theirs))  # type: ignore[arg-type]
    text = render(ours)
    assert text == generate_latest(registry).decode()
    parsed = list(text_string_to_metric_families(text))
    assert [f.name for f in parsed] == [f.name for f in theirs]
    assert sum(len(f.samples) for f in parsed) == sum(len(f.samples) for f in theirs)


def test_requests_as_prometheus_client_writes_them() -> None:
    """The request counter and latency histogram: prometheus_client's Counter and Histogram fed the same
    requests write the same samples (but their ``_created`` ones, which pyvirt does not keep),
    also once an action's cached histogram text has changed."""
    from prometheus_client import Counter, Histogram

    buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
    ours = Requests("t_requests", "Requests", "t_duration_seconds", "Time \\ taken", buckets)
    registry = CollectorRegistry(auto_describe=False)
    count = Counter("t_requests", "Requests", ["action", "code"], registry=registry)
    latency = Histogram("t_duration_seconds", "Time \\ taken", ["action"], registry=registry, buckets=buckets)
    rng = random.Random(5)
    actions = ["domain.stats", "host.metrics", 'odd"action', "domain.start"]

    def theirs() -> str:
        lines = generate_latest(registry).decode().splitlines(keepends=True)
        created = {line.split()[2] for line in lines if line.startswith("# TYPE") and "_created" in line}
        return "".join(line for line in lines if not any(name in line for name in created))

    for _ in range(3):
        for _ in range(40):
            action, code = rng.choice(actions), rng.choice([200, 404, 500])
            seconds = rng.choice([0.001, 30, 31, 0.0]) if rng.random() < 0.2 else rng.random() ** 4 * 20
            ours.observe(action, code, seconds)
            count.labels(action, str(code)).inc()
            latency.labels(action).observe(seconds)
        assert ours.text() == theirs()
    assert [f.name for f in text_string_to_metric_families(ours.text())] == [
        "t_requests",
        "t_duration_seconds",
    ]
