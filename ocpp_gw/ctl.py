"""``ocpp-gw ctl``: the admin API from the shell, with readable tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

DEFAULT_CONFIG = "/etc/ocpp_gw/ocpp.conf"


def admin_url(config_path: str) -> str:
    from .settings import load
    address = load(config_path)["admin.listener"]
    if address is None:
        raise SystemExit(f"ocpp-gw ctl: admin.listener is off in {config_path}")
    host, port = address
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def admin_token(config_path: str, token_file: str | None, *, config_required: bool) -> str | None:
    """The admin token to send: from --token-file, else from admin.token_file in the config."""
    if token_file is None:
        from .settings import ConfigError, load
        try:
            token_file = load(config_path)["admin.token_file"]
        except ConfigError:
            if config_required:
                raise
            return None
    if not token_file:
        return None
    try:
        with open(token_file, encoding="utf-8") as file:
            return file.readline().strip()
    except OSError as err:
        raise SystemExit(f"ocpp-gw ctl: cannot read the admin token: {err}") from None


def request(base: str, method: str, path: str, token: str | None = None) -> tuple[int, object]:
    req = urllib.request.Request(base + path, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    cells = [[title for _, title in columns]]
    cells += [["-" if row.get(key) is None else str(row.get(key)) for key, _ in columns]
              for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


CLIENT_COLUMNS = [("cid", "CID"), ("peer", "PEER"), ("version", "VERSION"), ("since", "CONNECTED"),
                  ("state", "STATE"),
                  ("last_action", "LAST ACTION"), ("queue_depth", "QUEUE"),
                  ("messages_in", "IN"), ("messages_out", "OUT")]


def _since(row: dict) -> dict:
    stamp = row.get("connected_at")
    row["since"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else None
    return row


ARROWS = {"from_cp": "CP -> gateway", "to_csms": "gateway -> CSMS", "from_csms": "CSMS -> gateway",
          "to_cp": "gateway -> CP"}
TIME_KEYS = ("connected_at", "last_message_at")


def when(stamp: float | None, now: float) -> str:
    """A wall-clock time as a person reads it: local date and time, and how long ago."""
    if not stamp:
        return "-"
    ago = max(0, int(now - stamp))
    hours, rest = divmod(ago, 3600)
    span = f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s" if rest >= 60 else f"{rest}s"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))} ({span} ago)"


def history_line(entry: dict) -> str:
    """One message of the history: time, direction, type, action, UniqueId, size, and what a gateway error was."""
    stamp = time.strftime("%H:%M:%S", time.localtime(entry["ts"])) + f".{int(entry['ts'] % 1 * 1000):03d}"
    parts = [stamp, f"{ARROWS.get(entry['direction'], entry['direction']):16}", f"{entry['type']:10}",
             f"{entry.get('action') or '-':28}", entry["unique_id"], f"{entry['size']} B"]
    if entry.get("gateway_error"):
        parts.append(f"gateway error: {entry['gateway_error']}")
    if entry.get("payload") is not None:
        parts.append(json.dumps(entry["payload"], separators=(",", ":"))[:200])
    return "  ".join(parts)


def format_show(body: dict, now: float) -> str:
    """``ctl show``: one field a line, times readable, then the history oldest first."""
    body = dict(body)
    history = body.pop("history", None) or []
    body.pop("history_payloads", None)
    lines = [f"{key.replace('_', ' '):20} {when(value, now) if key in TIME_KEYS else '-' if value is None else value}"
             for key, value in body.items()]
    lines.append(f"history ({len(history)} messages, oldest first):" if history else "history: none kept")
    lines += ["  " + history_line(entry) for entry in history]
    return "\n".join(lines)


def config_problem(config_path: str, err) -> str:
    """The one line ctl prints when it cannot read the gateway's configuration."""
    return (f"ocpp-gw ctl: cannot use {config_path}: {err.problem}; pass the gateway's configuration with "
            f"-c FILE, or its admin address with --url http://HOST:PORT")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ocpp-gw ctl", description="talk to a running gateway")
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    parser.add_argument("--url", help="admin API base URL (default: from admin.listener)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    parser.add_argument("--token-file", help="admin token file (default: admin.token_file of the config)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("clients", help="list connected charge points")
    sub.add_parser("show", help="one charge point").add_argument("cid")
    sub.add_parser("kick", help="disconnect a charge point").add_argument("cid")
    sub.add_parser("stats", help="counters and gauges")
    args = parser.parse_args(argv)
    from .settings import ConfigError
    try:
        base = args.url or admin_url(args.config)
        token = admin_token(args.config, args.token_file, config_required=not args.url)
    except ConfigError as err:
        print(config_problem(args.config, err), file=sys.stderr)
        return 2
    try:
        if args.command == "clients":
            status, body = request(base, "GET", "/api/v1/clients", token)
        elif args.command == "show":
            status, body = request(base, "GET", f"/api/v1/clients/{quote(args.cid, safe='')}", token)
        elif args.command == "kick":
            status, body = request(base, "DELETE", f"/api/v1/clients/{quote(args.cid, safe='')}", token)
        else:
            status, body = request(base, "GET", "/api/v1/stats", token)
    except (urllib.error.URLError, OSError) as err:
        print(f"ocpp-gw ctl: cannot reach the gateway at {base}: {err}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"ocpp-gw ctl: {body.get('error', status)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=1))
    elif args.command == "clients":
        print(table([_since(row) for row in body], CLIENT_COLUMNS))
        print(f"{len(body)} connected")
    elif args.command == "kick":
        print(f"kicked {body['kicked']}")
    elif args.command == "show":
        print(format_show(body, time.time()))
    else:
        counters = body.pop("counters")
        print("\n".join(f"{key:20} {value}" for key, value in body.items()))
        print(table([{"name": k, "value": v} for k, v in counters.items()],
                    [("name", "COUNTER"), ("value", "VALUE")]))
    return 0
