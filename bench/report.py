"""The results as a table (printed and written into docs/performance.md) and a plot (PNG)."""

from __future__ import annotations

import re
from pathlib import Path

from .numbers import ratio

TARGETS = ("gateway", "adapter", "baseline")
# Column headings; "adapter" is the baseline's ocpp-library central system behind the gateway (ocpp_gw.backend).
HEADINGS = {"gateway": "gateway", "adapter": "gateway + adapter", "baseline": "baseline"}
FAILED = "failed"


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
    """(figure, metric, {target: value}, target, whether a ratio means something)."""
    table = []

    def pair(figure, metric, pick, target="", compare=True):
        values = {t: _pick(pick, results.get(figure, {}).get(t)) for t in TARGETS}
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
        for n in next((r.keys() for r in results["storm"].values() if "error" not in r), []):
            pair("storm", f"{int(n):,} CPs: time until all booted (s)", lambda r, n=n: r[n]["last"],
                 "≤ 2×" if int(n) == 5000 else "")
            pair("storm", f"{int(n):,} CPs: not booted", lambda r, n=n: _failures(r[n]["failures"]),
                 compare=False)
    if "hold" in results:
        pair("hold", "idle CPs held (booted)", lambda r: r["open_at_measure"], compare=False)
        pair("hold", "RSS per connection (KiB)", lambda r: r["rss_per_connection_kb"], "≤ 100 KB")
        pair("hold", "threads per connection", lambda r: r["threads_per_connection"])
        pair("hold", "CPU while idle (% of one core)", lambda r: r["idle_cpu_percent"], "< 10%")
        pair("hold", "disconnected while idle", lambda r: sum(r["disconnected"].values()), "0", compare=False)
    return table


def _compared(results: dict) -> list[str]:
    """The targets compared with the baseline: those measured, else the gateway (its column shows dashes)."""
    measured = {target for sides in results.values() for target in sides}
    return [t for t in TARGETS if t != "baseline" and t in measured] or ["gateway"]


def markdown_table(results: dict) -> str:
    compared = _compared(results)
    columns = [HEADINGS[t] for t in compared] + ["baseline"] + [f"{HEADINGS[t]} / baseline" for t in compared]
    lines = ["| figure | measure | " + " | ".join(columns) + " | target |",
             "|---|---|" + "---:|" * len(columns) + "---|"]
    for figure, metric, values, target, compare in rows(results):
        baseline = values["baseline"]
        quotients = [ratio(values[t], baseline) if compare and all(isinstance(v, (int, float))
                                                                   for v in (values[t], baseline)) else None
                     for t in compared]
        cells = [fmt(values[t]) for t in compared] + [fmt(baseline)] + [fmt(q, "×") for q in quotients]
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
    for target in TARGETS:
        style = styles[target]
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
