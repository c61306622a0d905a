"""``python -m tests.fuzz``: run the fuzz targets (``make fuzz`` runs 1,000,000 inputs)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.fuzz.harness import run_target
from tests.fuzz.targets import BY_NAME, TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs in all, shared by the targets")
    parser.add_argument("--target", action="append", choices=sorted(BY_NAME), help="only these (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed, the same inputs)")
    parser.add_argument("--limit", type=float, default=10.0, help="seconds one input may take (else a hang)")
    parser.add_argument(
        "--out", type=Path, default=Path(".cache/fuzz"), help="crashes, hangs and report.json"
    )
    args = parser.parse_args(argv)
    targets = [BY_NAME[name] for name in args.target] if args.target else TARGETS
    per_target = -(-args.inputs // len(targets))  # rounded up: at least --inputs in all
    report: dict[str, object] = {"seed": args.seed, "limit_seconds": args.limit}
    failed = False
    with tempfile.TemporaryDirectory(
        prefix="pvfuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as work:
        for target in targets:
            outcome = run_target(
                target, per_target, args.seed, Path(work) / target.name, args.out, args.limit
            )
            report[target.name] = outcome.as_dict()
            print(f"{target.name}: {json.dumps(outcome.as_dict())} {outcome.kinds or ''}", flush=True)
            failed |= bool(outcome.crashes or outcome.hangs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
