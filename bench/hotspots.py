"""Summarize a py-spy profile in collapsed-stack form (`py-spy record --format raw`).

    python -m bench.hotspots bench/.cache/profiles/storm-3000.txt [--top 15]

Prints the frames where samples end (self time) and the functions that appear in most samples
(inclusive time), so hot spots can be named with evidence.
"""

from __future__ import annotations

import argparse
import collections
import sys


def read_stacks(lines) -> list[tuple[list[str], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def hot_spots(stacks: list[tuple[list[str], int]], top: int) -> tuple[int, list, list]:
    """(total samples, [(self samples, frame)], [(inclusive samples, frame)]), largest first."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, own.most_common(top), inclusive.most_common(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots")
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with open(args.profile) as file:
        total, own, inclusive = hot_spots(read_stacks(file), args.top)
    print(f"{total} samples (threads × ticks, idle threads excluded)")
    for title, rows in (("self (where the sample ended)", own), ("inclusive (on the stack)", inclusive)):
        print(f"\n{title}:")
        for count, frame in ((c, f) for f, c in rows):
            print(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
