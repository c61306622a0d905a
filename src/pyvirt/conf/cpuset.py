"""libvirt's CPU set syntax (``0-3,^2,8``), as ``<vcpu cpuset>`` and ``<cputune>`` pins write it."""

from __future__ import annotations

from pyvirt.errors import XMLError

#: libvirt's VIR_DOMAIN_CPUMASK_LEN: the highest CPU number a set may name is one less.
CPUMASK_LEN = 16384


def parse_cpuset(text: str, what: str) -> frozenset[int]:
    """The CPUs ``text`` names; ``what`` (``'vcpu/@cpuset'``) names the attribute in errors."""
    cpus: set[int] = set()
    excluded: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        negate = item.startswith("^")
        if negate:
            item = item[1:]
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()) or (negate and sep):
            raise XMLError(f"invalid CPU set '{text}' in {what}: expected numbers, ranges 'a-b' and '^n'")
        first, last = int(low), int(high) if sep else int(low)
        if first > last or last >= CPUMASK_LEN:
            raise XMLError(f"invalid CPU set '{text}' in {what}: range {item} (CPUs 0-{CPUMASK_LEN - 1})")
        (excluded if negate else cpus).update(range(first, last + 1))
    result = frozenset(cpus - excluded)
    if not result:
        raise XMLError(f"invalid CPU set '{text}' in {what}: it names no CPU")
    return result
