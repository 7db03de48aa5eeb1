"""Peak memory of a command and everything it starts (kernels, servers, subprocesses).

Runs the command, samples the resident memory (RSS) of its whole process tree from ``/proc``
every ``--interval`` seconds, and prints the peak of the sum, the peak number of processes
and of Jupyter kernels alive at once, and the wall time. Linux only.

    python benchmarks/peak_memory.py -- python -m pytest -m slow tests/test_course.py

(the notebook tests: the README quotes this command's result). The command's exit status is
passed on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _processes() -> dict[int, tuple[int, int, bool]]:
    """pid -> (parent pid, resident bytes, is a Jupyter kernel), for every readable process."""
    table: dict[int, tuple[int, int, bool]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
        table[int(entry.name)] = (int(fields[1]), int(statm[1]) * PAGE, b"ipykernel" in cmdline)
    return table


def _tree(root: int, table: dict[int, tuple[int, int, bool]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    if not Path("/proc/self/statm").exists():
        parser.error("this script reads /proc: Linux only")
    started = time.monotonic()
    process = subprocess.Popen(command)
    peak_bytes = peak_processes = peak_kernels = 0
    while process.poll() is None:
        table = _processes()
        tree = _tree(process.pid, table)
        total = sum(table[pid][1] for pid in tree)
        kernels = sum(table[pid][2] for pid in tree)
        if total > peak_bytes:
            peak_bytes = total
        peak_processes = max(peak_processes, len(tree))
        peak_kernels = max(peak_kernels, kernels)
        time.sleep(args.interval)
    seconds = time.monotonic() - started
    print(
        f"peak memory of the process tree: {peak_bytes / 2**30:.2f} GiB; at most {peak_processes} "
        f"processes and {peak_kernels} Jupyter kernels at once; {seconds:.0f} s; exit status "
        f"{process.returncode}",
        file=sys.stderr,
    )
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
