"""`python -m bench.storm_auth`: figure 4, the connection storm, on the gateway with and without per-CP
credentials in the same run (issue 17: recovery after a restart).

For each N the storm runs on a fresh gateway three ways, one after the other: without authentication
(`auth.backend = none`), with per-CP credentials stored as the gateway stores machine-made secrets
(`passwd add --generate`, `passwd import --machine-made`), and, unless `--no-scrypt`, with the same
passwords stored as operator-chosen ones (scrypt). `--rounds R` repeats the three R times, in turned
order, and reports the median of each; the ratio to "no auth" is the figure's target (≤ 1.5× at 5,000).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

from . import credentials, figures, procfs, report
from .numbers import ratio
from .report import fmt
from .run import DOC, ROOT, gateway_version, machine, override
from .stack import GatewayTarget, raise_fd_limit

VARIANTS = ("none", "file", "scrypt")
LABELS = {"none": "no auth", "file": "machine-made secrets", "scrypt": "scrypt (operator-chosen)"}
SECTION = "storm-auth"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.storm_auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, a smoke check")
    parser.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE",
                        help="e.g. --set storm=1000,3000,5000 --set storm_timeout=180")
    parser.add_argument("--rounds", type=int, default=1, help="storms per N and variant (median reported)")
    parser.add_argument("--no-scrypt", action="store_true", help="leave out the scrypt variant")
    parser.add_argument("--update-doc", action="store_true",
                        help=f"write the table into section {SECTION} of docs/performance.md, the plot to "
                             f"docs/performance-{SECTION}.png and the results to bench/results-{SECTION}.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = override(figures.QUICK if args.quick else figures.FULL, args.set)
    variants = [v for v in VARIANTS if not (args.no_scrypt and v == "scrypt")]
    raise_fd_limit()
    credentials.seed_file()
    files = {v: credentials.credentials_file(max(sizes.storm), v) for v in variants if v != "none"}
    command = "python -m bench.storm_auth " + shlex.join(argv if argv is not None else sys.argv[1:])
    started, busy, own = time.time(), procfs.machine_busy_seconds(), procfs.own_seconds()
    runs: dict = {str(n): {v: [] for v in variants} for n in sizes.storm}
    for n in sizes.storm:
        for round_ in range(args.rounds):
            order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
            for variant in order:
                runs[str(n)][variant].append(_one_storm(files.get(variant), n, sizes, variant))
    elapsed = time.time() - started
    others = 100 * max(0.0, (procfs.machine_busy_seconds() - busy) - (procfs.own_seconds() - own)) / (
        elapsed * 2)
    dump = {"meta": {"command": command.strip(), "gateway_version": gateway_version(), "machine": machine(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
                     "minutes": round(elapsed / 60, 1), "other_processes_cpu_percent": others,
                     "rounds": args.rounds}, "runs": runs}
    (credentials.CACHE / f"last-{SECTION}.json").write_text(json.dumps(dump, indent=1))
    print(table(runs))
    if args.update_doc:
        write_doc(dump)
    return 0


def _one_storm(passwd, n: int, sizes: figures.Sizes, variant: str) -> dict:
    print(f"[{time.strftime('%H:%M:%S')}] storm {n:,} on the gateway, {LABELS[variant]} ...", flush=True)
    one = override(sizes, [f"storm={n}"])
    try:
        result = figures.storm(GatewayTarget(passwd), one, False)[n]
    except Exception as error:  # noqa: BLE001 - one storm failing must not lose the others
        result = {"error": f"{type(error).__name__}: {error}"}
    print("   ", json.dumps(result, default=str)[:300], flush=True)
    return result


def median_last(results: list[dict]) -> float | None:
    """Median time until all booted over the rounds where every CP booted; None when none did."""
    times = [r["last"] for r in results if r.get("last") and not sum(r.get("failures", {}).values())]
    return statistics.median(times) if times else None


def table(runs: dict) -> str:
    variants = list(next(iter(runs.values())))
    head = ["CPs"] + [f"{LABELS[v]}: all booted (s)" for v in variants] + \
        [f"{LABELS[v]} / no auth" for v in variants if v != "none"] + ["not booted (all rounds)"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for n, by_variant in runs.items():
        medians = {v: median_last(results) for v, results in by_variant.items()}
        ratios = [ratio(medians[v], medians["none"]) for v in variants if v != "none"]
        failed = {v: sum(sum(r.get("failures", {}).values()) + ("error" in r) for r in results)
                  for v, results in by_variant.items()}
        cells = [f"{int(n):,}"] + [fmt(medians[v]) for v in variants] + \
            [fmt(r, "×") for r in ratios] + [", ".join(f"{LABELS[v]} {k}" for v, k in failed.items())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: dict, path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    colours = {"none": "tab:gray", "file": "tab:red", "scrypt": "tab:purple"}
    for variant in next(iter(runs.values())):
        points = [(int(n), median_last(by[variant])) for n, by in runs.items()]
        unfinished = [(int(n), max(r.get("last") or 0 for r in by[variant])) for n, by in runs.items()
                      if by[variant] and median_last(by[variant]) is None]
        points = [(n, t) for n, t in points if t]
        if points:
            axis.plot(*zip(*points), marker="s", color=colours[variant], label=f"gateway, {LABELS[variant]}")
        if unfinished:
            axis.plot(*zip(*unfinished), marker="x", markersize=10, linestyle="none", color=colours[variant],
                      label=f"gateway, {LABELS[variant]}: not all booted by then")
    axis.set(xlabel="charge points (N)", ylabel="seconds until all booted", title="Connection storm after a restart")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_doc(dump: dict) -> None:
    meta = dump["meta"]
    plot_path = ROOT / "docs" / f"performance-{SECTION}.png"
    (ROOT / "bench" / f"results-{SECTION}.json").write_text(json.dumps(dump, indent=1) + "\n")
    section = (f"Command: `{meta['command']}` — run {meta['started']} ({meta['minutes']} min) on "
               f"{meta['machine']}; gateway {meta['gateway_version']}; processes outside the bench used "
               f"{meta['other_processes_cpu_percent']:.0f}% of the machine's CPU meanwhile; median of "
               f"{meta['rounds']} storm(s) per cell.\n\n{table(dump['runs'])}\n")
    if plot(dump["runs"], plot_path):
        section += f"\n![connection storm with and without per-CP credentials]({plot_path.name})\n"
    report.update_doc(DOC, SECTION, section)
    print(f"wrote {DOC.relative_to(ROOT)}, bench/results-{SECTION}.json, {plot_path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
