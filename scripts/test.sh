#!/usr/bin/env bash
# `make test`: the whole suite. On a machine with two cores or more, the unit tests (no guests, no daemons,
# scratch files only) run beside the integration tests (which mostly wait on one TCG guest at a time), each
# in its own pytest; the unit run's output is printed whole when both are done. Either failing, or either
# collecting no test (pytest's status 5), fails the target. The unit run is niced: it takes the CPU the
# integration tests leave idle. The integration tests run in two pytest-xdist workers side by side
# (PYVIRT_TEST_WORKERS=N: N; 1: one pytest), a test file to a worker (its module fixtures made once),
# the longest files first (tests/support/schedule.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
pytest=("$PY" -m pytest -q -p no:cacheprovider)

if (($(nproc) < 2)); then
  exec "${pytest[@]}" tests --durations=40
fi

unit_log=$(mktemp --tmpdir pyvirt-unit-tests.XXXXXX)
trap 'rm -f "$unit_log"' EXIT
nice -n 15 "${pytest[@]}" tests/unit --durations=15 >"$unit_log" 2>&1 &
unit_pid=$!
workers=${PYVIRT_TEST_WORKERS:-2}
side_by_side=()
((workers > 1)) && side_by_side=(-n "$workers" --dist loadfile)
"${pytest[@]}" "${side_by_side[@]}" tests/integration --durations=40
integration=$?
wait "$unit_pid"
unit=$?

echo
echo "======================== unit tests (run beside the integration tests) ========================"
cat "$unit_log"
echo
echo "make test: integration tests exit status $integration, unit tests exit status $unit"
((integration == 0 && unit == 0))
