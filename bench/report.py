"""The results as a table (printed and written into docs/performance.md) and a plot (PNG)."""

from __future__ import annotations

import re
from pathlib import Path

from .numbers import median_by_last, ratio

TARGETS = ("gateway", "adapter", "baseline")
# Column headings; "adapter" is the baseline's ocpp-library central system behind the gateway (ocpp_gw.backend).
HEADINGS = {"gateway": "gateway", "adapter": "gateway + adapter", "baseline": "baseline"}
FAILED = "failed"
FIRST_VERSION = "1.6"
VERSION_ORDER = ("1.6", "2.0.1", "2.1")


def side_key(target: str, version: str) -> str:
    """The results key of a target measured with CPs of one OCPP version: "gateway", "baseline 2.0.1"
    (1.6 keeps the bare name, so results saved before versions existed still read)."""
    return target if version == FIRST_VERSION else f"{target} {version}"


def split_side(key: str) -> tuple[str, str]:
    target, _, version = key.partition(" ")
    return target, version or FIRST_VERSION


# What ranks the rounds of a figure (lower is better); burst and sustain share one result.
_RANK = {
    "latency": lambda r: r["p50"],
    "burst": lambda r: max((b["last"] or float("inf")) for b in r["burst"].values()),
    "sustain": lambda r: -r["sustain"]["throughput"],
    "storm": lambda r: max((s["last"] or float("inf")) for s in r.values() if isinstance(s, dict)),
    "hold": lambda r: r["idle_cpu_percent"],
}


def median_round(figure: str, rounds: list[dict]) -> dict:
    """The median of a figure's rounds on one side (a failed round ranks slowest), with every round
    kept under "rounds" when there were several."""
    def rank(result):
        try:
            return (0, _RANK[figure](result))
        except (KeyError, TypeError, ValueError):
            return (1, 0.0)

    if len(rounds) == 1:
        return rounds[0]
    if figure == "storm":
        return {**_median_storms(rounds), "rounds": rounds}
    ranked = sorted(rounds, key=rank)
    return {**ranked[(len(ranked) - 1) // 2], "rounds": rounds}


def _median_storms(rounds: list[dict]) -> dict:
    """Each storm size's median over the rounds: the sizes of one round are separate storms, each on a
    fresh server."""
    sizes = sorted({n for r in rounds for n in storm_sizes(r)}, key=int)
    return {n: median_by_last([r[n] for r in rounds if n in r]) for n in sizes}


def storm_sizes(result: dict) -> list[str]:
    """The storm sizes of a storm result (its other keys: "rounds", "error")."""
    return [n for n, storm in result.items() if str(n).isdigit() and isinstance(storm, dict)]


def _measured_sides(results: dict) -> list[str]:
    """Every side in the results, versions in order, then targets in order."""
    keys = {key for sides in results.values() for key in sides}
    return sorted(keys, key=lambda k: (TARGETS.index(split_side(k)[0]) if split_side(k)[0] in TARGETS else 99,
                                       VERSION_ORDER.index(split_side(k)[1])
                                       if split_side(k)[1] in VERSION_ORDER else 99))


def _heading(key: str, several_versions: bool) -> str:
    target, version = split_side(key)
    return HEADINGS.get(target, target) + (f" {version}" if several_versions else "")


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text}{unit}"


def _ms(value):
    return None if value is None else value * 1000


def _failures(failures: dict) -> int:
    return sum(failures.values())


def _cpu_total(per_process: dict) -> float:
    """User and system CPU of every process, added up."""
    return round(sum(sum(kinds.values()) for kinds in per_process.values()), 3)


def _pick(pick, result):
    """The value of one measure, or None when that side was not measured or its figure failed."""
    if result is None:
        return None
    if "error" in result:
        return FAILED
    try:
        return pick(result)
    except (KeyError, TypeError):
        return None


def rows(results: dict) -> list[tuple[str, str, dict, str, bool]]:
    """(figure, metric, {side: value}, target, whether a ratio means something)."""
    table = []
    sides = set(_measured_sides(results)) | set(TARGETS)

    def pair(figure, metric, pick, target="", compare=True):
        values = {t: _pick(pick, results.get(figure, {}).get(t)) for t in sides}
        table.append((figure, metric, values, target, compare))

    if "latency" in results:
        pair("latency", "1 CP, Heartbeat round trip p50 (ms)", lambda r: _ms(r["p50"]), "≤ 1.5×")
        pair("latency", "1 CP, Heartbeat round trip p99 (ms)", lambda r: _ms(r["p99"]))
    if "burst" in results:
        sizes = next((r["burst"].keys() for r in results["burst"].values() if "burst" in r), [])
        for n in sizes:
            pair("burst", f"{int(n):,} CPs: time to last answer (s)", lambda r, n=n: r["burst"][n]["last"],
                 "≤ 2×" if int(n) == 3000 else "")
            pair("burst", f"{int(n):,} CPs: calls not answered in 30 s", lambda r, n=n: _failures(r["burst"][n]["failures"]),
                 "0" if int(n) == 5000 else "", compare=False)
    if "sustain" in results:
        pair("sustain", "closed loop: round trips/s", lambda r: r["sustain"]["throughput"], "≥ 0.7×")
        pair("sustain", "closed loop: p99 (ms)", lambda r: _ms(r["sustain"]["p99"]))
    if "storm" in results:
        for n in next((storm_sizes(r) for r in results["storm"].values() if "error" not in r), []):
            pair("storm", f"{int(n):,} CPs: time until all booted (s)", lambda r, n=n: r[n]["last"],
                 "≤ 2×" if int(n) == 5000 else "")
            pair("storm", f"{int(n):,} CPs: not booted", lambda r, n=n: _failures(r[n]["failures"]),
                 compare=False)
            pair("storm", f"{int(n):,} CPs: CPU per CP, all server processes (ms)",
                 lambda r, n=n: _cpu_total(r[n]["cpu_ms_per_cp"]))
    if "hold" in results:
        pair("hold", "idle CPs held (booted)", lambda r: r["open_at_measure"], compare=False)
        pair("hold", "RSS per connection (KiB)", lambda r: r["rss_per_connection_kb"], "≤ 100 KB")
        pair("hold", "threads per connection", lambda r: r["threads_per_connection"])
        pair("hold", "CPU while idle (% of one core)", lambda r: r["idle_cpu_percent"], "< 10%")
        pair("hold", "disconnected while idle", lambda r: sum(r["disconnected"].values()), "0", compare=False)
    return table


def _columns(results: dict) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The sides compared with a baseline (those measured, else the gateway: its column shows dashes),
    the baselines, and the ratios shown: each side over the baseline of its version, then each 2.x
    side over the same target at 1.6."""
    measured = _measured_sides(results)
    compared = [k for k in measured if split_side(k)[0] != "baseline"] or ["gateway"]
    baselines = [k for k in measured if split_side(k)[0] == "baseline"] or ["baseline"]
    quotients = [(k, side_key("baseline", split_side(k)[1])) for k in compared]
    quotients = [(k, b) for k, b in quotients if b in baselines or len(baselines) == 1 and b == "baseline"]
    quotients += [(k, side_key(split_side(k)[0], FIRST_VERSION)) for k in compared + baselines
                  if split_side(k)[1] != FIRST_VERSION and side_key(split_side(k)[0], FIRST_VERSION) in measured]
    return compared, baselines, quotients


def _ratio_cell(values: dict, over: str, under: str, compare: bool) -> str:
    pair = (values.get(over), values.get(under))
    return fmt(ratio(*pair) if compare and all(isinstance(v, (int, float)) for v in pair) else None, "×")


def markdown_table(results: dict) -> str:
    compared, baselines, quotients = _columns(results)
    several = len({split_side(k)[1] for k in compared + baselines}) > 1
    columns = ([_heading(k, several) for k in compared + baselines]
               + [f"{_heading(a, several)} / {_heading(b, several)}" for a, b in quotients])
    lines = ["| figure | measure | " + " | ".join(columns) + " | target |",
             "|---|---|" + "---:|" * len(columns) + "---|"]
    for figure, metric, values, target, compare in rows(results):
        cells = ([fmt(values.get(k)) for k in compared + baselines]
                 + [_ratio_cell(values, a, b, compare) for a, b in quotients])
        # The targets are the gateway's (issue 7); they say nothing about the adapter.
        shown_target = target if "gateway" in compared else ""
        lines.append(f"| {figure} | {metric} | " + " | ".join(cells) + f" | {shown_target} |")
    errors = sorted({(figure, target, result["error"]) for figure, sides in results.items()
                     for target, result in sides.items() if isinstance(result, dict) and "error" in result})
    if errors:
        lines.append("")
        lines += [f"*{figure}* on the {target} failed: `{error}`" + "  " for figure, target, error in errors]
    return "\n".join(lines)


def update_doc(doc: Path, name: str, section: str) -> None:
    """Replace the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` (appended if absent)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if start not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    doc.write_text(pattern.sub(lambda _: f"{start}\n{section}\n{end}", text))


def _sized(figure: dict) -> dict:
    """The per-size results of a figure, without an `error` entry."""
    return {n: r for n, r in figure.items() if isinstance(r, dict)}


def plot(results: dict, path: Path) -> bool:
    """Latency and throughput against N for both targets; False when matplotlib is missing or there is
    nothing to draw."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"gateway": dict(color="tab:red"), "adapter": dict(color="tab:green"), "baseline": dict(color="tab:blue")}
    for target in _measured_sides(results):
        name, version = split_side(target)
        style = dict(styles.get(name, {}), alpha=1.0 if version == FIRST_VERSION else 0.55)
        # A figure that failed on a side holds {"error": text} instead of per-size results.
        burst = _sized(results.get("burst", {}).get(target, {}).get("burst", {}))
        storm = _sized(results.get("storm", {}).get(target, {}))
        points = [(int(n), r["last"]) for n, r in burst.items() if r["last"] and not r["failures"]]
        timed_out = [int(n) for n, r in burst.items() if r["failures"]]
        if timed_out:
            left.plot(timed_out, [30.0] * len(timed_out), marker="x", markersize=10, linestyle="none",
                      label=f"{target}: burst, calls unanswered at 30 s", **style)
        if points:
            left.plot(*zip(*points), marker="o", label=f"{target}: burst, last answer", **style)
            right.plot([n for n, _ in points], [n / t for n, t in points], marker="o",
                       label=f"{target}: burst, answers/s", **style)
        points = [(int(n), r["last"]) for n, r in storm.items() if r["last"]]
        if points:
            left.plot(*zip(*points), marker="s", linestyle="--", label=f"{target}: storm, all booted", **style)
            right.plot([n for n, _ in points], [n / t for n, t in points], marker="s", linestyle="--",
                       label=f"{target}: storm, boots/s", **style)
        sustain = results.get("sustain", {}).get(target, {}).get("sustain")
        if sustain:
            right.plot([sustain["cps"]], [sustain["throughput"]], marker="*", markersize=14, linestyle="none",
                       label=f"{target}: sustained round trips/s", **style)
    if not left.lines and not right.lines:  # e.g. figure 5 alone: nothing against N to draw
        plt.close(figure)
        return False
    left.set(xlabel="charge points (N)", ylabel="seconds", title="Time to last answer / all booted")
    right.set(xlabel="charge points (N)", ylabel="per second", title="Throughput")
    for axis in (left, right):
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
