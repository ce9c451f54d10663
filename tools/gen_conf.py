"""Write etc/ocpp.conf and docs/configuration.md from the key table in ocpp_gw/settings.py.

    python tools/gen_conf.py          # rewrite both files
    python tools/gen_conf.py --check  # exit 1 if either is out of date

A unit test compares both files with what this script renders, so they never drift.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocpp_gw.settings import CHANNEL_PREFIX, KEYS, OVERRIDE_PREFIX, Key  # noqa: E402

CONF_PATH = ROOT / "etc" / "ocpp.conf"
DOCS_PATH = ROOT / "docs" / "configuration.md"
WIDTH = 98

# Keys the shipped file sets rather than leaving commented out at their default.
SHIPPED_VALUES: dict[str, str] = {}

OVERRIDE_EXAMPLE = {
    OVERRIDE_PREFIX + "BootNotification": "cp/${cid}/Notify/${action}",
    OVERRIDE_PREFIX + "MeterValues": "cp/${cid}/MeterValues",
}
EMQX4_LAYOUT = {
    "ocpp.payload_format": "bare",
    "ocpp.upstream.topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.upstream.reply_topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.upstream.error_topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.dnstream.topic": "${clientid}/dn/${type}/${action}/${id}",
}

INTRO = """
One setting per line: key = value. A line starting with # is a comment, and so is a # after
a value and a space. To put a # in a value, quote the whole value, as in: mqtt.password =
"pa#ss" (one pair of surrounding quotes is removed); an unquoted value with a # in it is
refused rather than silently cut short. Nothing else in a value is interpreted: ${cid}
placeholders, commas and spaces inside it are kept as written. There are no [sections] and no
value spans several lines.

Every key has a default; a key that is not set keeps it. Durations are a number with unit ms,
s, m, h or d (500ms, 1.5s, 30s, 5m, 1h) or plain seconds. Sizes are a whole number with unit
B, KB, MB or GB (1 KB = 1024 bytes) or plain bytes.

An unknown key, a bad value, a duplicate key or an unreadable file stops the gateway before it
starts, with exit code 2 and a message naming the file, the line and the key. Check a file
without starting anything: ocpp-gw --check-config /etc/ocpp_gw/ocpp.conf

Changes take effect when the service restarts; SIGHUP (systemctl reload ocpp-gw) re-reads only
the credential file and log.level.
"""

OVERRIDE_TITLE = f"Per-action upstream topics: {OVERRIDE_PREFIX}<Action>"
OVERRIDE_TEXT = """
The Calls of that action are published on this topic instead of ocpp.upstream.topic. <Action>
is the OCPP action name as OCPP spells it (BootNotification, not bootnotification); an action
only the CSMS sends (Reset, for one) is refused, as its override could never apply. Set as many
as needed; placeholders as for ocpp.upstream.topic. For example:
"""

CHANNEL_TITLE = f"Command channels: {CHANNEL_PREFIX}<name>.topic, .allowed_actions, .reply_topic"
CHANNEL_TEXT = """
For each name in ocpp.dnstream.channels, three keys. topic: the topic template a second backend
publishes its calls on (like ocpp.dnstream.topic, and different from it). allowed_actions: the
CSMS actions it may send, separated by spaces or commas. reply_topic: where the charge point's
answers to its calls go, and the gateway errors about them (like ocpp.upstream.reply_topic); they
go there only, never to the primary reply or error topic. Any other action, and any answer to a
charge point's call, sent on the channel is refused with a gateway error (reason not_allowed) on
its reply_topic and never reaches the charge point. docs/mqtt-api.md shows a broker ACL that
keeps the channel's MQTT user off the primary topic. For example:
"""
CHANNEL_EXAMPLE = {
    "ocpp.dnstream.channels": "billing",
    CHANNEL_PREFIX + "billing.topic": "billing/${cid}",
    CHANNEL_PREFIX + "billing.allowed_actions": "RemoteStartTransaction RemoteStopTransaction",
    CHANNEL_PREFIX + "billing.reply_topic": "billing/${cid}/Reply",
}

EMQX4_TITLE = "EMQX 4.x topic layout"
EMQX4_TEXT = """
To serve a backend written for the EMQX 4.x OCPP plugin, set the keys below
(in place of the ones above). Payloads are then the bare OCPP payload objects, and the message
type, action and UniqueId travel in the topic: a BootNotification of CP001 is published on
ocpp/CP001/up/request/BootNotification/<UniqueId>, and the CSMS sends its answer to
ocpp/CP001/dn/response/BootNotification/<UniqueId>.
"""

EXAMPLES_AFTER_GROUP = {"Topics": ((OVERRIDE_TITLE, OVERRIDE_TEXT, OVERRIDE_EXAMPLE),
                                   (CHANNEL_TITLE, CHANNEL_TEXT, CHANNEL_EXAMPLE),
                                   (EMQX4_TITLE, EMQX4_TEXT, EMQX4_LAYOUT))}


def paragraphs(text: str) -> list[list[str]]:
    """Blocks of text, each a list of items: one for a paragraph, one per "- " line of a list."""
    blocks = []
    for block in text.strip().split("\n\n"):
        items: list[str] = []
        for line in block.splitlines():
            if line.startswith("- ") or not items:
                items.append(line.strip())
            else:
                items[-1] += " " + line.strip()
        blocks.append(items)
    return blocks


def comment(text: str) -> list[str]:
    lines: list[str] = []
    for items in paragraphs(text):
        if lines:
            lines.append("#")
        for item in items:
            indent = "  " if item.startswith("- ") else ""
            lines += ["# " + line for line in
                      textwrap.wrap(item, WIDTH - 2, subsequent_indent=indent, break_on_hyphens=False)]
    return lines


def shown_default(key: Key) -> str:
    return key.default if key.default else "empty"


def render_conf() -> str:
    out = ["# ocpp_gw configuration: /etc/ocpp_gw/ocpp.conf", "#", *comment(INTRO), "#",
           "# Every key is listed below with what it means, the values it accepts and its default,",
           "# commented out. To change one, remove the leading # and edit the value.", ""]
    group = None
    for key in KEYS:
        if key.group != group:
            if group in EXAMPLES_AFTER_GROUP:
                out += conf_examples(EXAMPLES_AFTER_GROUP[group])
            group = key.group
            out += ["", "# " + "=" * (WIDTH - 2), f"# {group}", "# " + "=" * (WIDTH - 2), ""]
        out += comment(key.doc)
        out += ["#", *comment(f"Values: {key.parse.accepts}."), f"# Default: {shown_default(key)}"]
        if key.name in SHIPPED_VALUES:
            out.append(f"{key.name} = {SHIPPED_VALUES[key.name]}")
        else:
            out.append(f"#{key.name} = {key.default}".rstrip())
        out.append("")
    if group in EXAMPLES_AFTER_GROUP:
        out += conf_examples(EXAMPLES_AFTER_GROUP[group])
    return "\n".join(out).rstrip("\n") + "\n"


def conf_examples(examples) -> list[str]:
    out: list[str] = []
    for title, text, settings in examples:
        out += [f"# {title}", "#", *comment(text), "#"]
        out += [f"#{name} = {value}" for name, value in settings.items()]
        out.append("")
    return out


_KEY_NAMES = "|".join(re.escape(key.name) for key in sorted(KEYS, key=lambda key: -len(key.name)))
_CODE = re.compile(rf"(?<![\w/.])(?:{_KEY_NAMES})(?:\.<\w+>|\.[A-Za-z]\w*)?(?![\w/])"
                   r"|[^\s,;(){}]*(?:\$\{\w+\}|<\w+>)[^\s,;(){}]*")


def markdown(text: str) -> str:
    """Plain doc text as Markdown: keys, templates and <placeholders> in backticks."""
    def code(match: re.Match[str]) -> str:
        token = match[0]
        core = token.rstrip(".:")
        return f"`{core}`{token[len(core):]}"
    pieces = re.split(r"(`[^`]*`)", _CODE.sub(code, text))
    return "".join(piece if piece.startswith("`") else piece.replace("<", "&lt;") for piece in pieces)


def render_markdown() -> str:
    out = ["# Configuration", "",
           "<!-- Generated from the key table in ocpp_gw/settings.py by tools/gen_conf.py;"
           " edit the table, then run `python tools/gen_conf.py`. -->", "",
           "The gateway reads one file, `/etc/ocpp_gw/ocpp.conf` by default (`ocpp-gw -c FILE` for"
           " another). The shipped file lists every key below, commented out at its default.", ""]
    for items in paragraphs(INTRO):
        out += [markdown(item) for item in items] + [""]
    out += ["| Key | Default |", "|---|---|"]
    out += [f"| [`{key.name}`](#{anchor(key.name)}) | {md_default(key)} |" for key in KEYS]
    out.append("")
    group = None
    for key in KEYS:
        if key.group != group:
            if group in EXAMPLES_AFTER_GROUP:
                out += md_examples(EXAMPLES_AFTER_GROUP[group])
            group = key.group
            out += [f"## {group}", ""]
        out += [f"### {key.name}", ""]
        for items in paragraphs(key.doc):
            out += [markdown(item) for item in items] + [""]
        out += [f"- **Values:** {markdown(key.parse.accepts)}.", f"- **Default:** {md_default(key)}", ""]
    if group in EXAMPLES_AFTER_GROUP:
        out += md_examples(EXAMPLES_AFTER_GROUP[group])
    return "\n".join(out).rstrip("\n") + "\n"


def md_default(key: Key) -> str:
    return f"`{key.default}`" if key.default else "empty"


def anchor(name: str) -> str:
    return re.sub(r"[^\w-]", "", name.lower())


def md_examples(examples) -> list[str]:
    out: list[str] = []
    for title, text, settings in examples:
        out += [f"### {markdown(title)}", ""]
        for items in paragraphs(text):
            out += [markdown(item) for item in items] + [""]
        out += ["```", *(f"{name} = {value}" for name, value in settings.items()), "```", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are current")
    args = parser.parse_args(argv)
    stale = []
    for path, text in ((CONF_PATH, render_conf()), (DOCS_PATH, render_markdown())):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
