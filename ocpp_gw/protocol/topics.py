"""MQTT topic templates (SPEC §6): render, subscribe, and read values back from a topic.

Placeholders: ``${cid}`` (alias ``${clientid}``), ``${action}``, ``${id}``, ``${type}``,
``${version}`` (the CP's OCPP subprotocol, e.g. ``ocpp2.0.1``).
The mountpoint is prepended before the template is read, so it may hold placeholders too.
Literal ``+`` and ``#`` levels are MQTT wildcards and are kept as such in subscriptions and
honoured by ``match``.
"""

from __future__ import annotations

import re

PLACEHOLDERS = {"cid": "cid", "clientid": "cid", "action": "action", "id": "id", "type": "type",
                "version": "version"}

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")



def placeholders(text: str) -> list[str]:
    """The placeholder names of a template, in order; ValueError on an unknown or unclosed one.

    The one reading of the ``${...}`` grammar: the settings check templates with it, and
    :class:`Template` compiles them with it.
    """
    names = _PLACEHOLDER.findall(text)
    for name in names:
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder ${{{name}}}")
    if "${" in _PLACEHOLDER.sub("", text):
        raise ValueError("a ${ is not closed by }")
    return names


# A level is a tuple of tokens: a literal str, or a _Slot naming the value it takes.


class _Slot(str):
    """A placeholder token (its canonical name), told apart from literal text by its type."""


def _tokens(text: str) -> tuple[str, ...]:
    tokens: list[str] = []
    position = 0
    for found in _PLACEHOLDER.finditer(text):
        name = PLACEHOLDERS[found.group(1)]
        if found.start() > position:
            tokens.append(text[position:found.start()])
        tokens.append(_Slot(name))
        position = found.end()
    if position < len(text):
        tokens.append(text[position:])
    return tuple(tokens)


def _format_field(token: str) -> str:
    if type(token) is _Slot:
        return "{" + token + "}"
    return token.replace("{", "{{").replace("}", "}}")


def _level_pattern(level: tuple[str, ...], groups: list[str]) -> str:
    if level == ("+",):
        return "[^/]*"
    parts = []
    for token in level:
        if type(token) is _Slot:
            parts.append(f"(?P<g{len(groups)}>[^/]+)")
            groups.append(str(token))
        else:
            parts.append(re.escape(token))
    return "".join(parts)


class Template:
    """One topic template with its mountpoint, compiled once."""

    __slots__ = ("text", "placeholders", "_levels", "_format", "_pattern", "_groups")

    def __init__(self, template: str, mountpoint: str = ""):
        self.text = mountpoint + template
        if not self.text:
            raise ValueError("topic template is empty")
        try:
            placeholders(self.text)
        except ValueError as err:
            raise ValueError(f"{err} in topic template {self.text!r}") from None
        self._levels = tuple(_tokens(level) for level in self.text.split("/"))
        self.placeholders: frozenset[str] = frozenset(
            token for level in self._levels for token in level if type(token) is _Slot)
        self._format = "/".join(
            "".join(_format_field(token) for token in level) for level in self._levels)
        self._groups: list[str] = []
        self._pattern = self._compile_match()

    def _compile_match(self) -> re.Pattern[str]:
        levels = self._levels
        any_tail = levels[-1] == ("#",)
        if any_tail:
            levels = levels[:-1]
        pattern = "/".join(_level_pattern(level, self._groups) for level in levels)
        if any_tail:   # "a/#" matches "a" as well as "a/b/c"
            pattern = f"{pattern}(?:/.*)?" if levels else ".*"
        return re.compile(pattern, re.DOTALL)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def render(self, cid: str, action: str = "", unique_id: str = "", type_: str = "",
               version: str = "") -> str:
        """The topic for these values; a placeholder without a value renders empty."""
        return self._format.format(cid=cid, action=action, id=unique_id, type=type_,
                                   version=version)

    def _filter(self, cid: str | None) -> str:
        levels = []
        for level in self._levels:
            if any(type(t) is _Slot and (cid is None or t != "cid") for t in level):
                levels.append("+")   # MQTT wildcards take a whole level
            else:
                levels.append("".join(cid if type(t) is _Slot else t for t in level))
        return "/".join(levels)

    def subscription(self, cid: str) -> str:
        """The filter for one CP: its cid filled in, every level with another placeholder ``+``."""
        return self._filter(cid)

    def wildcard(self) -> str:
        """The filter for every CP: every level holding a placeholder becomes ``+``."""
        return self._filter(None)

    def match(self, topic: str) -> dict[str, str] | None:
        """The placeholder values ``topic`` carries, keyed cid/action/id/type/version, or None when it does
        not fit. Only the template's own placeholders are keys; a placeholder matches one or
        more characters within a level, and when one level holds several, earlier ones take
        as much as they can. A placeholder used twice must carry the same value."""
        found = self._pattern.fullmatch(topic)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, name in enumerate(self._groups):
            value = found.group(f"g{index}")
            if values.setdefault(name, value) != value:
                return None
        return values


def wildcard_subscription(template: str | Template) -> str:
    """The filter with every placeholder level replaced by ``+`` (all CPs at once)."""
    if not isinstance(template, Template):
        template = Template(template)
    return template.wildcard()
