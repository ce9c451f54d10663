"""`python -m bench`: run the figures for the gateway and the baseline, print and record the results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from . import credentials, figures, procfs, report
from .ocppj import DEFAULT_VERSION, DIALECTS
from .stack import ROOT, BaselineTarget, GatewayTarget, raise_fd_limit

FIGURES = ("latency", "burst", "sustain", "storm", "hold")
ALIASES = {str(i): name for i, name in enumerate(FIGURES, start=1)}
DOC = ROOT / "docs" / "performance.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, a smoke check (under a minute)")
    parser.add_argument("--only", action="append", metavar="FIGURE",
                        help=f"run only this figure ({', '.join(FIGURES)} or 1-5); may be repeated")
    parser.add_argument("--auth", choices=("file", "scrypt", "none"), default="file",
                        help="file: per-CP Basic credentials checked by both servers, generated secrets stored "
                             "as the gateway stores machine-made ones (default); scrypt: the same passwords "
                             "stored as operator-chosen ones (scrypt); none: neither checks them")
    parser.add_argument("--target", choices=("gateway", "adapter", "baseline"), action="append",
                        help="measure only this target (default gateway and baseline); adapter: the baseline's "
                             "ocpp-library central system served through the gateway by ocpp_gw.backend")
    parser.add_argument("--ocpp", action="append", choices=DIALECTS, metavar="VERSION",
                        help="the OCPP version the simulated CPs speak (1.6, 2.0.1 or 2.1; default 1.6); may be "
                             "repeated: each figure is then measured on each target with each version, and the "
                             "table adds each version's ratio to 1.6 on the same target")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="measure each figure N times, the targets taking turns round by round (so that a "
                             "busy moment of the machine does not fall on one side only); the table shows each "
                             "side's median round, the results JSON keeps every round")
    parser.add_argument("--gateway-switch-interval", type=float, metavar="SECONDS",
                        help="experiment: run the gateway with sys.setswitchinterval(SECONDS) (default: Python's 0.005)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the gateway during burst, sustain, storm and hold (bench/.cache/profiles/); "
                             "the figures of such a run are perturbed and not for the doc")
    parser.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE",
                        help="override a size, e.g. --set storm=1000,2000 --set hold=2000 --set sustain_seconds=10 "
                             f"(sizes: {', '.join(figures.Sizes.__dataclass_fields__)})")
    parser.add_argument("--from-results", metavar="JSON",
                        help="measure nothing: print (and with --update-doc write) the table and plot of a saved run")
    parser.add_argument("--update-doc", nargs="?", const="results", metavar="SECTION",
                        help="write the table into section SECTION (default: results) of docs/performance.md, "
                             "the plot to docs/performance[-SECTION].png and the raw results to "
                             "bench/results[-SECTION].json")
    args = parser.parse_args(argv)
    chosen = [ALIASES.get(name, name) for name in args.only or FIGURES]
    unknown = [name for name in chosen if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)} or 1-5")
    args.figures = [name for name in FIGURES if name in chosen]
    args.targets = args.target or ["gateway", "baseline"]
    args.versions = list(dict.fromkeys(args.ocpp or [DEFAULT_VERSION]))
    return args


def make_targets(args: argparse.Namespace, passwd: Path | None) -> list:
    """Every (target, version) pair to measure, the versions of one target side by side."""
    made = {"gateway": lambda version: GatewayTarget(passwd, args.gateway_switch_interval, ocpp=version),
            "adapter": lambda version: GatewayTarget(passwd, args.gateway_switch_interval, adapter=True,
                                                     ocpp=version),
            "baseline": lambda version: BaselineTarget(passwd, ocpp=version)}
    return [made[name](version) for name in args.targets for version in args.versions]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.from_results:
        return rewrite(args)
    sizes = override(figures.QUICK if args.quick else figures.FULL, args.set)
    fd_limit = raise_fd_limit()
    largest = max([1, *sizes.burst, sizes.sustain_cps, *sizes.storm, *(
        [sizes.hold] if "hold" in args.figures else [])])
    if fd_limit < largest + 1000:
        print(f"bench: warning: the open-files limit ({fd_limit}) is tight for {largest} connections", flush=True)
    credentials.seed_file()
    passwd = credentials.credentials_file(largest, args.auth) if args.auth != "none" else None
    targets = make_targets(args, passwd)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"bench: {command.strip()} — figures: {', '.join(args.figures)}; auth: {args.auth}; "
          f"OCPP {', '.join(args.versions)}", flush=True)
    started = time.time()
    busy_at_start, own_at_start = procfs.machine_busy_seconds(), procfs.own_seconds()
    results: dict = {}
    for name in args.figures:
        if name == "sustain" and "burst" in args.figures:
            continue  # measured on the burst's population
        rounds: dict[str, list] = {}
        for _ in range(max(1, args.rounds)):
            for target in targets:
                one: dict = {}
                measure(name, target, args, sizes, one)
                for figure, sides in one.items():
                    rounds.setdefault(figure, {}).setdefault(target.key, []).append(sides[target.key])
                    results.setdefault(figure, {})[target.key] = report.median_round(figure, rounds[figure][target.key])
                _save({"partial": True, "results": results})
    table = report.markdown_table(results)
    print()
    print(table)
    meta = {"command": command.strip(), "gateway_version": gateway_version(),
            "other_processes_cpu_percent": _others(started, busy_at_start, own_at_start), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "minutes": round((time.time() - started) / 60, 1), "machine": machine(), "auth": args.auth,
            "ocpp_versions": args.versions, "rounds": args.rounds,
            "gateway_switch_interval": args.gateway_switch_interval, "quick": args.quick, "profiled": args.profile, "sizes": sizes.__dict__}
    dump = {"meta": meta, "results": results}
    _save(dump)
    if args.update_doc:
        write_doc(args.update_doc, dump)
    return 0


def measure(name: str, target, args: argparse.Namespace, sizes: figures.Sizes, results: dict) -> None:
    """Figure `name` on one target into results[figure][target.key]; a failure is recorded, not raised."""
    print(f"[{time.strftime('%H:%M:%S')}] {name} on {target.key} ...", flush=True)
    try:
        if name in ("burst", "sustain"):
            both = figures.burst_and_sustain(target, sizes, args.profile, do_burst=name == "burst",
                                             do_sustain="sustain" in args.figures)
            for part in ("burst", "sustain"):
                if part in both:
                    results.setdefault(part, {})[target.key] = both
        else:
            results.setdefault(name, {})[target.key] = getattr(figures, name)(target, sizes, args.profile)
    except Exception as error:  # noqa: BLE001 - one figure failing must not lose the others
        print(f"    {name} on {target.key} failed: {type(error).__name__}: {error}", flush=True)
        results.setdefault(name, {})[target.key] = {"error": f"{type(error).__name__}: {error}"}
    print("   ", _one_line(name, results, target.key), flush=True)


def _save(dump: dict) -> None:
    credentials.CACHE.mkdir(parents=True, exist_ok=True)
    (credentials.CACHE / "last-results.json").write_text(json.dumps(dump, indent=1, default=str))


def rewrite(args: argparse.Namespace) -> int:
    dump = json.loads(Path(args.from_results).read_text())
    print(report.markdown_table(dump["results"]))
    if args.update_doc:
        write_doc(args.update_doc, dump)
    return 0


def write_doc(section_name: str, dump: dict) -> None:
    """Table into docs/performance.md (section `section_name`), plot and raw results beside it."""
    meta, results = dump["meta"], dump["results"]
    suffix = "" if section_name == "results" else f"-{section_name}"
    plot_path = ROOT / "docs" / f"performance{suffix}.png"
    results_path = ROOT / "bench" / f"results{suffix}.json"
    results_path.write_text(json.dumps(dump, indent=1, default=str) + "\n")
    plotted = report.plot(results, plot_path)
    section = (f"Command: `{meta['command']}` — run {meta['started']} ({meta['minutes']} min) on "
               f"{meta['machine']}; gateway {meta['gateway_version']}; processes outside the bench used "
               f"{meta['other_processes_cpu_percent']:.0f}% of the machine's CPU meanwhile.\n\n"
               f"{report.markdown_table(results)}\n")
    if plotted:
        section += f"\n![latency and throughput against N]({plot_path.name})\n"
    report.update_doc(DOC, section_name, section)
    print(f"\nwrote {DOC.relative_to(ROOT)}, {results_path.relative_to(ROOT)}"
          + (f", {plot_path.relative_to(ROOT)}" if plotted else " (no plot)"))


def override(sizes: figures.Sizes, settings: list[str]) -> figures.Sizes:
    changes = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        field = figures.Sizes.__dataclass_fields__.get(name)
        if field is None or not value:
            raise SystemExit(f"python -m bench: --set {setting}: unknown size or no value")
        current = getattr(sizes, name)
        if isinstance(current, tuple):
            changes[name] = tuple(int(v) for v in value.split(","))
        else:
            changes[name] = type(current)(value)
    return dataclasses.replace(sizes, **changes)


def _one_line(name: str, results: dict, target: str) -> str:
    result = results.get(name, {}).get(target) or results.get("burst", {}).get(target)
    text = json.dumps(result, default=str)
    return text if len(text) < 400 else text[:400] + " …"


def _others(started: float, busy_at_start: float, own_at_start: float) -> float:
    """Share of the machine's CPU (both cores) that processes other than the bench's used during the run."""
    elapsed = max(1e-6, time.time() - started)
    busy = procfs.machine_busy_seconds() - busy_at_start
    own = procfs.own_seconds() - own_at_start
    return max(0.0, 100 * (busy - own) / (elapsed * (os.cpu_count() or 1)))


def gateway_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ocpp_gw"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in ocpp_gw/" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"
