"""Spec strings (`kind:target?key=value&...`) and the lazy registries that resolve them."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from fer_fairness.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A parsed spec: ``manifest:faces.csv?name=study&emotion=label``."""

    text: str
    kind: str
    target: str
    options: Mapping[str, str] = field(default_factory=dict)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)


@dataclass(frozen=True)
class Registry:
    """Maps spec kinds to lazily imported factories (``module:attribute``), so nothing heavy loads early."""

    what: str  # "dataset" or "model", for messages
    entries: Mapping[str, str]
    usage: Mapping[str, str]  # kind -> example spec, for messages

    def parse(self, text: str) -> Spec:
        """Split ``kind:target?key=value&...``; an unknown kind or a missing target is a ConfigError."""
        head, _, query = text.partition("?")
        kind, _, target = head.partition(":")
        if kind not in self.entries:
            close = difflib.get_close_matches(kind, self.entries, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown {self.what} kind '{kind}' in '{text}'{hint} (known: {', '.join(self.usage.values())})"
            )
        if ":" in self.usage[kind] and not target:
            raise ConfigError(f"{self.what} '{text}' needs a target after the colon: {self.usage[kind]}")
        # Split by hand rather than parse_qsl: a "+" in a value is literal here (group names use it).
        options = {}
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            options[unquote(key)] = unquote(value)
        return Spec(text=text, kind=kind, target=target, options=options)

    def factory(self, kind: str):
        module, _, attribute = self.entries[kind].partition(":")
        return getattr(importlib.import_module(module), attribute)


def check_options(spec: Spec, allowed: tuple[str, ...], *, what: str) -> None:
    """Unknown ``?key=`` options are mistakes: say which, and what is allowed."""
    unknown = sorted(set(spec.options) - set(allowed))
    if unknown:
        allowed_text = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"{what} '{spec.text}': unknown option(s) {', '.join(unknown)} (allowed: {allowed_text})")
