"""Start-up time of the command line (#28): how long ``archrepair --help`` and each command's
``--help`` take (the imports and the parser, everything a command does before its first work), and
``import archrepair`` alone; each the median of ``--repeats`` fresh processes, with the slowest
imported modules of ``archrepair --help`` (``python -X importtime``).

    python benchmarks/startup.py [--repeats 5]

Run it on an idle machine with a warm file cache (the first process of each is not counted).
Targets: ``archrepair --help`` under 1.5 s, a command's start under 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import print_headline

COMMANDS = ("models", "blocks", "data", "train", "failures", "evaluate", "localize", "repair", "compare", "corrupt",
            "import", "demo")


def seconds(arguments: list[str], repeats: int) -> float:
    """Median wall seconds of ``python arguments`` over ``repeats`` fresh processes, after one warm-up."""
    times = []
    for index in range(repeats + 1):
        started = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
        if index:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def slowest_imports(count: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time under ``archrepair --help`` (seconds)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archrepair.cli", "--help"], capture_output=True,
                          text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[1]) / 1e6))
    top = [row for row in rows if not row[0].startswith(" ")]
    return sorted(top, key=lambda row: -row[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, choices=range(1, 51), metavar="1..50")
    args = parser.parse_args()
    figures = {"import_archrepair_seconds": round(seconds(["-c", "import archrepair"], args.repeats), 3),
               "help_seconds": round(seconds(["-m", "archrepair.cli", "--help"], args.repeats), 3)}
    print(f"import archrepair: {figures['import_archrepair_seconds']:.2f} s; archrepair --help: "
          f"{figures['help_seconds']:.2f} s (target 1.5 s)")
    for command in COMMANDS:
        figures[f"{command}_help_seconds"] = round(seconds(["-m", "archrepair.cli", command, "--help"], args.repeats), 3)
        print(f"archrepair {command} --help: {figures[f'{command}_help_seconds']:.2f} s (target 3 s)")
    print("slowest top-level imports of archrepair --help (cumulative seconds):")
    for name, value in slowest_imports():
        print(f"  {name}: {value:.2f}")
    print_headline(figures)


if __name__ == "__main__":
    main()
