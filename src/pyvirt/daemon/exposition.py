"""Prometheus' text exposition format (version 0.0.4), written straight from the values of a scrape.

A :class:`Family` holds one metric family's samples as finished lines: a /metrics scrape of fifty
domains writes over a thousand samples, and building prometheus_client's metric families, a named
tuple per sample, then formatting each took more CPU than reading the counters. The text is the one
prometheus_client's ``generate_latest`` writes for the same families (label names sorted, counters
named ``…_total``, numbers as Go prints them), which tests/unit/daemon/test_exposition.py checks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence


def number(value: float) -> str:
    """``value`` as the exposition format writes it: Go's formatting of a float64, which writes an
    exponent from 1e+07 up where Python's ``repr`` waits until 1e+16 (prometheus_client's
    ``floatToGoString``, inlined: a scrape formats a thousand numbers)."""
    f = float(value)
    text = repr(f)
    if text[-1] in "fn":  # inf, -inf, nan
        return "NaN" if f != f else "+Inf" if f > 0 else "-Inf"
    dot = text.find(".")
    if f > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def escape(value: str) -> str:
    """A label value with its backslashes, newlines and double quotes escaped."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class Family:
    """One metric family: its ``# HELP`` and ``# TYPE`` lines and its samples, in the order added.

    ``kind`` is ``gauge`` or ``counter`` (whose samples are named ``name_total``); ``labels`` are the
    label names, in the order :meth:`add` takes their values.
    """

    __slots__ = ("_lines", "_order", "_sample", "header", "labels")

    def __init__(self, name: str, help_text: str, kind: str, labels: Sequence[str] = ()) -> None:
        assert kind in ("gauge", "counter"), kind
        self._sample = f"{name}_total" if kind == "counter" else name
        doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
        self.header = f"# HELP {self._sample} {doc}\n# TYPE {self._sample} {kind}\n"
        self.labels = tuple(labels)
        self._order = sorted(range(len(self.labels)), key=lambda i: self.labels[i])
        self._lines: list[str] = []

    def add(self, values: Sequence[str], value: float) -> None:
        """A sample with these label values (in the order of ``labels``)."""
        if self.labels:
            pairs = ",".join(f'{self.labels[i]}="{escape(values[i])}"' for i in self._order)
            self._lines.append(f"{self._sample}{{{pairs}}} {number(value)}\n")
        else:
            self._lines.append(f"{self._sample} {number(value)}\n")

    def text(self) -> str:
        return self.header + "".join(self._lines)


def gauge(name: str, help_text: str, *labels: str) -> Family:
    return Family(name, help_text, "gauge", labels)


def counter(name: str, help_text: str, *labels: str) -> Family:
    return Family(name, help_text, "counter", labels)


def render(families: Iterable[Family]) -> str:
    """The families' text, one after the other."""
    return "".join(family.text() for family in families)


class Requests:
    """The API's request counter (by action and HTTP status) and latency histogram (by action), kept
    as requests end; each action's histogram text is written again only after it has changed."""

    def __init__(self, counter_name: str, counter_help: str, histogram_name: str, histogram_help: str,
                 buckets: Sequence[float]) -> None:  # fmt: skip
        self._counter = (counter_name, counter_help)
        self.buckets = tuple(sorted(buckets))
        self._bounds = [number(b) for b in self.buckets] + ["+Inf"]
        self._name = histogram_name
        doc = histogram_help.replace("\\", r"\\").replace("\n", r"\n")
        self._header = f"# HELP {histogram_name} {doc}\n# TYPE {histogram_name} histogram\n"
        self.counts: dict[tuple[str, str], int] = {}
        self._latency: dict[str, list[float]] = {}  # per bucket (the last +Inf), then the sum
        self._text: dict[str, str] = {}

    def observe(self, action: str, status: int, seconds: float) -> None:
        key = (action, str(status))
        self.counts[key] = self.counts.get(key, 0) + 1
        kept = self._latency.setdefault(action, [0.0] * (len(self.buckets) + 2))
        kept[bisect.bisect_left(self.buckets, seconds)] += 1
        kept[-1] += seconds
        self._text.pop(action, None)

    def _histogram(self, action: str) -> str:
        text = self._text.get(action)
        if text is None:
            kept, label, total, lines = self._latency[action], escape(action), 0.0, []
            for bound, count in zip(self._bounds, kept, strict=False):
                total += count
                lines.append(f'{self._name}_bucket{{action="{label}",le="{bound}"}} {number(total)}\n')
            lines.append(f'{self._name}_count{{action="{label}"}} {number(total)}\n')
            lines.append(f'{self._name}_sum{{action="{label}"}} {number(kept[-1])}\n')
            text = self._text[action] = "".join(lines)
        return text

    def text(self) -> str:
        requests = counter(*self._counter, "action", "code")
        for (action, code), count in self.counts.items():
            requests.add((action, code), count)
        return requests.text() + self._header + "".join(self._histogram(a) for a in self._latency)
