"""Disk images: ``pyvirt img`` against ``qemu-img`` on the same files, in one run.

``python bench/bench_img.py [--size 2G] [--rounds 7] [--rounds-c 3] [--json] [--write-docs]``

Converts a raw image (first half random, second half written zeros) to qcow2 and back, and to
compressed qcow2 (``-c``) and back; times ``info`` and ``create`` as commands; times
``image_info()`` and ``create_image()`` as library calls. Each figure is the median of
``--rounds`` runs, the two tools alternating; every pyvirt output is checked with
``qemu-img compare``. ``--write-docs`` rewrites this benchmark's section in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
HEADING = "## Disk images (pyvirt img vs qemu-img)"
PYVIRT = [str(Path(sys.executable).parent / "pyvirt"), "img"]  # the installed launcher, as a user runs it


def run(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def timed_pair(
    rounds: int, qemu: list[str], ours: list[str], env: dict[str, str], outs: list[Path]
) -> tuple[list[float], list[float]]:
    """Times of the two commands, who goes first alternating by round; ``outs`` (qemu's, ours) are
    removed before each run.

    The order matters on this VM: writing a fresh GiB into the page cache sometimes takes 3-5x
    longer than usual (perf puts the time in the kernel's copy into newly allocated page-cache
    folios, i.e. the host faulting memory back in), and which run pays depends on what ran before.
    """
    tq: list[float] = []
    tp: list[float] = []
    for index in range(rounds):
        pair = [(qemu, tq, outs[0]), (ours, tp, outs[1])]
        for argv, acc, out in pair if index % 2 == 0 else pair[::-1]:
            out.unlink(missing_ok=True)
            os.sync()
            acc.append(run(argv, env))
    return tq, tp


def make_source(path: Path, size: int) -> None:
    half = size // 2
    chunk = 8 << 20
    with open(path, "wb") as f:
        done = 0
        while done < half:
            n = min(chunk, half - done)
            f.write(os.urandom(n))
            done += n
        zeros = bytes(chunk)
        while done < size:
            n = min(chunk, size - done)
            f.write(zeros[:n])
            done += n
    os.sync()


def lib_latency(workdir: Path) -> dict[str, float]:
    sys.path.insert(0, str(SRC))
    from pyvirt.image import create_image, image_info

    p = workdir / "lib.qcow2"
    create_image(str(p), "qcow2", 10 << 30)
    image_info(str(p))
    out: dict[str, float] = {}
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        image_info(str(p))
    out["image_info() ms"] = (time.perf_counter() - t) / n * 1000
    n = 100
    t = time.perf_counter()
    for i in range(n):
        create_image(str(workdir / f"c{i % 4}.qcow2"), "qcow2", 10 << 30)
    out["create_image() ms"] = (time.perf_counter() - t) / n * 1000
    return out


def parse_size(text: str) -> int:
    units = {"K": 10, "M": 20, "G": 30}
    if text[-1].upper() in units:
        return int(float(text[:-1]) * (1 << units[text[-1].upper()]))
    return int(text)


def bench(size: int, rounds: int, rounds_c: int, workdir: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    load_before = os.getloadavg()[0]
    src = workdir / "src.raw"
    make_source(src, size)
    q_qcow, p_qcow = workdir / "q.qcow2", workdir / "p.qcow2"
    q_comp, p_comp = workdir / "qc.qcow2", workdir / "pc.qcow2"
    q_raw, p_raw = workdir / "q.raw", workdir / "p.raw"
    rows: list[dict[str, Any]] = []

    def convert_row(
        name: str,
        qargs: list[str],
        pargs: list[str],
        outs: list[Path],
        check: Path,
        ref: Path,
        n: int = rounds,
    ) -> None:
        sq, sp = timed_pair(n, ["qemu-img", "convert", *qargs], [*PYVIRT, "convert", *pargs], env, outs)
        tq, tp = statistics.median(sq), statistics.median(sp)
        r = subprocess.run(["qemu-img", "compare", str(ref), str(check)], capture_output=True, text=True)
        rows.append(
            {
                "op": name,
                "qemu_s": tq,
                "pyvirt_s": tp,
                "ratio": tq / tp,
                "qemu_MiBps": size / tq / 2**20,
                "pyvirt_MiBps": size / tp / 2**20,
                "identical": r.returncode == 0,
                "qemu_best_s": min(sq),
                "pyvirt_best_s": min(sp),
                "best_ratio": min(sq) / min(sp),
                "qemu_samples": sq,
                "pyvirt_samples": sp,
            }
        )

    convert_row(
        "convert raw → qcow2",
        ["-O", "qcow2", str(src), str(q_qcow)],
        ["-O", "qcow2", str(src), str(p_qcow)],
        [q_qcow, p_qcow],
        p_qcow,
        src,
    )
    convert_row(
        "convert qcow2 → raw",
        ["-O", "raw", str(q_qcow), str(q_raw)],
        ["-O", "raw", str(q_qcow), str(p_raw)],
        [q_raw, p_raw],
        p_raw,
        src,
    )
    convert_row(
        "convert -c raw → qcow2",
        ["-c", "-O", "qcow2", str(src), str(q_comp)],
        ["-c", "-O", "qcow2", str(src), str(p_comp)],
        [q_comp, p_comp],
        p_comp,
        src,
        rounds_c,
    )
    convert_row(
        "convert compressed qcow2 → raw",
        ["-O", "raw", str(q_comp), str(q_raw)],
        ["-O", "raw", str(q_comp), str(p_raw)],
        [q_raw, p_raw],
        p_raw,
        src,
    )
    sizes = {
        "q.qcow2 bytes": q_qcow.stat().st_size,
        "p.qcow2 bytes": p_qcow.stat().st_size,
        "qc.qcow2 bytes": q_comp.stat().st_size,
        "pc.qcow2 bytes": p_comp.stat().st_size,
    }

    cli: list[dict[str, Any]] = []
    n = 30
    for name, qa, pa in (
        ("info", ["qemu-img", "info", str(q_qcow)], [*PYVIRT, "info", str(q_qcow)]),
        (
            "create",
            ["qemu-img", "create", "-f", "qcow2", str(workdir / "n.qcow2"), "10G"],
            [*PYVIRT, "create", "-f", "qcow2", str(workdir / "n.qcow2"), "10G"],
        ),
    ):
        tq = statistics.median(run(qa, env) for _ in range(n))
        tp = statistics.median(run(pa, env) for _ in range(n))
        cli.append(
            {"op": f"{name} (command)", "qemu_ms": tq * 1000, "pyvirt_ms": tp * 1000, "ratio": tq / tp}
        )
    start = statistics.median(run([sys.executable, "-S", "-c", "pass"], env) for _ in range(n)) * 1000
    return {
        "load": [load_before, os.getloadavg()[0]],
        "size": size,
        "rounds": rounds,
        "rounds_c": rounds_c,
        "convert": rows,
        "cli": cli,
        "python_startup_ms": start,
        "library": lib_latency(workdir),
        "sizes": sizes,
        "machine": machine(),
    }


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    qemu = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "qemu-img": qemu,
        "memory": _mem(),
    }


def _mem() -> str:
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    size = res["size"]
    lines = [
        HEADING,
        "",
        f"`python bench/bench_img.py --size {size >> 20}M --rounds {res['rounds']} "
        f"--rounds-c {res['rounds_c']} --write-docs`",
        "",
        f"Source: a raw file of {size >> 20} MiB, first half random, second half written zeros; page cache "
        "warm; each figure is the median of the rounds, the tools alternating who goes first; ratio = "
        "qemu-img time / pyvirt time (above 1: pyvirt faster). Every pyvirt output was checked identical "
        "with `qemu-img compare`. pyvirt runs as `.venv/bin/pyvirt img` (the launcher `make setup` writes).",
        "",
        f"Machine: {m['cpu']}, {m['memory']}, Linux {m['kernel']}, Python {m['python']}, {m['qemu-img']}; "
        f"load average {res['load'][0]:.1f} at the start, {res['load'][1]:.1f} at the end (a shared machine: "
        "other jobs ran meanwhile, so single runs vary by several times; compare the ratios, and rerun).",
        "",
        "| operation | qemu-img | pyvirt img | ratio (median) | ratio (best) | identical |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["convert"]:
        lines.append(
            f"| {r['op']} | {r['qemu_s']:.2f} s ({r['qemu_MiBps']:.0f} MiB/s) | {r['pyvirt_s']:.2f} s "
            f"({r['pyvirt_MiBps']:.0f} MiB/s) | {r['ratio']:.2f}x | {r['best_ratio']:.2f}x | "
            f"{'yes' if r['identical'] else 'NO'} |"
        )
    for r in res["cli"]:
        lines.append(
            f"| {r['op']} | {r['qemu_ms']:.1f} ms | {r['pyvirt_ms']:.1f} ms | {r['ratio']:.2f}x | | |"
        )
    lines += ["", "Every sample, in seconds (sorted), qemu-img | pyvirt:", ""]
    for r in res["convert"]:
        q = " ".join(f"{x:.2f}" for x in sorted(r["qemu_samples"]))
        p = " ".join(f"{x:.2f}" for x in sorted(r["pyvirt_samples"]))
        lines.append(f"* {r['op']}: {q} | {p}")
    lib = res["library"]
    lines += [
        "",
        f"Library calls (in-process, no interpreter start): `image_info()` {lib['image_info() ms']:.3f} ms, "
        f"`create_image()` {lib['create_image() ms']:.3f} ms. For scale, `python -S -c pass` "
        f"(the bare interpreter) takes {res['python_startup_ms']:.1f} ms here.",
        "",
        "Output sizes (bytes): " + ", ".join(f"{k.split()[0]} {v}" for k, v in res["sizes"].items()) + ".",
        "",
        "How pyvirt gets there: 2 MiB chunks read ahead by two reader threads (uncompressed data is read "
        "straight from the file that holds it, found by block status / SEEK_DATA), zero granules found "
        "from one strided slice of every granule's first byte and confirmed with one memcmp each (the "
        "main thread stays light: the I/O threads need the GIL back after each system call), clusters "
        "reserved by the main thread and written by a "
        "writer thread; `-c` deflates on a thread pool (zlib drops the GIL) with an early abort: four "
        "1 KiB samples that fast deflate cannot shrink mark a cluster incompressible, and it is stored "
        "uncompressed without a full level-6 attempt (QEMU stores such clusters uncompressed too, after "
        "trying). Like qemu-img, convert does not fsync the result.",
        "",
        "Targets (issue 3): plain convert >= 0.8x qemu-img, compressed >= 1.0x, info/create commands no "
        "slower than qemu-img and < 1 ms as library calls.",
        "",
        "* Compressed convert: met by a wide margin (deflate on both cores, incompressible clusters "
        "detected early).",
        "* Library calls: met.",
        "* Plain convert: not met. raw -> qcow2 is steadily ~20% slower than qemu-img (0.76x; the "
        "main thread's zero detection and cluster allocation in Python are the difference). The runs "
        "that read from qcow2 are bimodal for both tools: a fresh GiB written into the page cache "
        "takes either ~0.3 s or 1.5-3 s on this VM, and perf puts the slow runs' time in the kernel's "
        "copy into newly allocated page-cache folios (`copy_folio_from_iter_atomic`), most likely "
        "the hypervisor faulting back memory the guest had handed it (the VM runs virtio-balloon free "
        "page reporting). pyvirt meets that slow mode more often, which drags its medians; in the "
        "fast mode (the 'best' column) it runs at 0.84-0.88x of qemu-img.",
        "* info/create as commands: out of reach for any CPython program. The bare interpreter "
        "(`python -S -c pass`, above) takes longer than qemu-img's whole `info` (~4 ms); pyvirt adds "
        "~3 ms (info) and ~5 ms (create) to it, the imports having been cut to what each verb needs.",
        "",
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if HEADING in old:
        start = old.index(HEADING)
        nxt = old.find("\n## ", start + len(HEADING))
        new = old[:start] + text + (old[nxt + 1 :] if nxt >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2G", help="source image size (default 2G)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of each plain convert (default 7)")
    ap.add_argument("--rounds-c", type=int, default=3, help="rounds of the -c convert (default 3)")
    ap.add_argument("--dir", help="work directory (default: a temporary one under /var/tmp)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/BENCHMARKS.md")
    ap.add_argument("--from-json", metavar="FILE", help="render a result saved with --json, run nothing")
    args = ap.parse_args()
    if args.from_json:
        text = markdown(json.loads(Path(args.from_json).read_text()))
        print(text)
        if args.write_docs:
            write_docs(text)
        return 0
    if shutil.which("qemu-img") is None:
        print("qemu-img is not installed", file=sys.stderr)
        return 1
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bench-img-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        res = bench(parse_size(args.size), args.rounds, args.rounds_c, workdir)
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    text = markdown(res)
    print(json.dumps(res, indent=2) if args.json else text)
    if args.write_docs:
        write_docs(text)
    return 0 if all(r["identical"] for r in res["convert"]) else 1


if __name__ == "__main__":
    sys.exit(main())
