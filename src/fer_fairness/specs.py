"""Spec strings (`kind:target?key=value&...`) and the lazy registries that resolve them."""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any
from urllib.parse import unquote

from fer_fairness.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A parsed spec: ``manifest:faces.csv?name=study&emotion=label``."""

    text: str
    kind: str
    target: str
    options: Mapping[str, str] = field(default_factory=dict)
    # The values as written, %-escapes kept, for options that split a value further (``?map=``):
    # splitting before unescaping lets a name hold ",", ";" or "=" as %2C, %3B, %3D.
    raw_options: Mapping[str, str] = field(default_factory=dict)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def names(self, key: str, *, what: str) -> tuple[str, ...] | None:
        """A comma list option (``?attributes=race,gender``), or None when absent; an empty list or a
        name given twice is a ConfigError (a repeated attribute would be tested as a family of its own)."""
        text = self.option(key)
        if text is None:
            return None
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        if not names:
            raise ConfigError(f"{what} '{self.text}': ?{key}= lists no names; name them, e.g. ?{key}=race,gender")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(
                f"{what} '{self.text}': ?{key}= names {', '.join(repeated)} more than once; name each once"
            )
        return names


@dataclass(frozen=True)
class Registry:
    """Maps spec kinds to lazily imported factories, so nothing heavy loads early.

    Three sources, in this order: the built-in ``entries`` (``module:attribute``), installed packages
    that declare an entry point in ``group`` (name = kind, value = ``module:attribute``; looked up only
    when a kind is not built in, or when the known kinds are listed), and objects added for this run
    by conftest hooks (``with_added``). A kind is defined once: a second definition is a ConfigError
    naming both sources.
    """

    what: str  # "dataset" or "model", for messages
    entries: Mapping[str, str]
    usage: Mapping[str, str]  # kind -> example spec, for messages
    group: str = ""  # entry-point group of installed adapters, e.g. "fer_fairness.models"
    extras: Mapping[str, str] = field(default_factory=dict)  # kind -> the pip extra that brings its libraries
    added: Mapping[str, Any] = field(default_factory=dict)  # kind -> factory, from conftest hooks
    added_by: Mapping[str, str] = field(default_factory=dict)  # kind -> where it was added (for messages)

    def with_added(self, factories: Mapping[str, Any], *, source: str) -> Registry:
        """A registry that also knows ``factories`` (kind -> factory or ready object), added by ``source``."""
        if not isinstance(factories, Mapping):
            raise ConfigError(
                f"{source} must return a mapping of {self.what} kind -> factory; got {type(factories).__name__}"
            )
        added, by = dict(self.added), dict(self.added_by)
        for kind, factory in factories.items():
            if not isinstance(kind, str) or not _KIND.fullmatch(kind):
                raise ConfigError(
                    f"{source} registers {self.what} kind {kind!r}; a kind is letters, digits, '-', '_' and '.', "
                    "starting with a letter"
                )
            other = self._source_of(kind, by)
            if other is not None:
                raise ConfigError(f"{source} registers {self.what} kind '{kind}', which {other} already defines")
            added[kind], by[kind] = factory, source
        return replace(self, added=added, added_by=by)

    def _source_of(self, kind: str, added_by: Mapping[str, str]) -> str | None:
        if kind in self.entries:
            return "fer-fairness"
        if kind in added_by:
            return added_by[kind]
        point = self._installed().get(kind)
        return f"package {_distribution(point)} (entry point {self.group})" if point is not None else None

    def _installed(self) -> dict[str, Any]:
        return _entry_points(self.group) if self.group else {}

    def known(self) -> dict[str, str]:
        """Every kind with an example spec: built in, installed, added."""
        kinds = dict(self.usage)
        for kind in (*self._installed(), *self.added):
            kinds.setdefault(kind, f"{kind}[:TARGET]")
        return kinds

    def parse(self, text: str) -> Spec:
        """Split ``kind:target?key=value&...``; an unknown kind or a missing target is a ConfigError."""
        head, _, query = text.partition("?")
        kind, _, target = head.partition(":")
        if kind not in self.entries and kind not in self.added and kind not in self._installed():
            known = self.known()
            close = difflib.get_close_matches(kind, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown {self.what} kind '{kind}' in '{text}'{hint} (known: {', '.join(known.values())})"
            )
        usage = self.usage.get(kind, "")
        if ":" in usage and "[:" not in usage and not target:  # "kind[:TARGET]" marks the target optional
            raise ConfigError(f"{self.what} '{text}' needs a target after the colon: {self.usage[kind]}")
        # Split by hand rather than parse_qsl: a "+" in a value is literal here (group names use it).
        options, raw = {}, {}
        for part in filter(None, query.split("&")):
            quoted_key, _, value = part.partition("=")
            key = unquote(quoted_key)
            # A repeated key or an empty value is a typo or a leftover; keeping the last, or falling
            # back to a default, would run something other than what was written.
            if key in options:
                raise ConfigError(f"{self.what} '{text}': option '{key}' is given twice; give it once")
            if not key or not unquote(value).strip():
                problem = f"option '{key}' has no value" if key else f"'{part}' names no option"
                raise ConfigError(f"{self.what} '{text}': {problem}; give one or leave the option out")
            options[key], raw[key] = unquote(value), value
        return Spec(text=text, kind=kind, target=target, options=options, raw_options=raw)

    def factory(self, kind: str):
        """The factory of ``kind``: imported now; a missing optional library is a ConfigError naming the extra."""
        if kind in self.added:
            return self.added[kind]
        if kind in self.entries:
            module, _, attribute = self.entries[kind].partition(":")
            try:
                return getattr(importlib.import_module(module), attribute)
            except ImportError as error:
                raise ConfigError(self._missing(kind, error)) from None
        point = self._installed()[kind]
        try:
            return point.load()
        except ImportError as error:
            raise ConfigError(
                f"{self.what} kind '{kind}' from package {_distribution(point)} cannot be imported: {error}"
            ) from None

    def build(self, spec: Spec, *args: Any, **kwargs: Any) -> Any:
        """Call the factory of ``spec.kind``; a missing optional library is a ConfigError naming the extra.

        The adapters import their heavy libraries (torch, transformers, onnxruntime) when they are built,
        so the ImportError surfaces here rather than in ``factory``.
        """
        factory = self.factory(spec.kind)
        try:
            return factory(spec, *args, **kwargs)
        except ImportError as error:
            raise ConfigError(self._missing(spec.kind, error)) from None

    def _missing(self, kind: str, error: ImportError) -> str:
        extra = self.extras.get(kind)
        library = error.name or str(error)
        if extra is None:
            return f"{self.what} kind '{kind}' needs {library}, which is not installed ({error})"
        return (
            f"{self.what} kind '{kind}' needs the '{extra}' extra ({library} is not installed): "
            f"pip install 'fer-fairness[{extra}]'"
        )


_KIND = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


@functools.cache
def _entry_points(group: str) -> dict[str, Any]:
    """Installed entry points of ``group`` by name (read once per process: it scans installed metadata)."""
    return {point.name: point for point in metadata.entry_points(group=group)}


def _distribution(point: Any) -> str:
    dist = getattr(point, "dist", None)
    return getattr(dist, "name", None) or point.value


def value_map(spec: Spec, key: str, *, what: str) -> dict[str, dict[str, str]]:
    """``?map=gender:F=female,M=male;race:W=White`` as {attribute: {value as written: value to use}}.

    Split on ``;``, ``:``, ``,`` and ``=`` before %-unescaping, so any name can be written (``%2C``
    for a comma). An empty target (``gender:unknown=``) marks a value as missing.
    """
    text = spec.raw_options.get(key, spec.options.get(key))  # a Spec built in code has no raw_options
    if text is None:
        return {}
    usage = f"?{key}=ATTRIBUTE:VALUE=NEW,VALUE=NEW;ATTRIBUTE:... (e.g. ?{key}=gender:F=female,M=male)"
    mapping: dict[str, dict[str, str]] = {}
    for part in filter(str.strip, text.split(";")):
        quoted_attribute, colon, entries = part.partition(":")
        attribute = unquote(quoted_attribute).strip()
        pairs = [entry.partition("=") for entry in filter(str.strip, entries.split(","))]
        if not colon or not attribute or not pairs or any(not eq or not unquote(old).strip() for old, eq, _ in pairs):
            raise ConfigError(f"{what} '{spec.text}': cannot read '{unquote(part)}' in ?{key}=; write {usage}")
        if attribute in mapping:
            raise ConfigError(f"{what} '{spec.text}': ?{key}= maps '{attribute}' twice; give its values in one part")
        values = mapping[attribute] = {}
        for old, _, new in pairs:
            old, new = unquote(old).strip(), unquote(new).strip()
            if values.get(old, new) != new:
                raise ConfigError(
                    f"{what} '{spec.text}': ?{key}= maps {attribute} '{old}' to both '{values[old]}' and '{new}'"
                )
            values[old] = new
    return mapping


def number_option(
    spec: Spec, key: str, default: Any = None, *, minimum: float = 1, kind: type = int, what: str = "model"
) -> Any:
    """A numeric ``?key=`` option (``kind`` int or float), checked: which option, what is allowed, what was given."""
    text = spec.option(key)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value < float("inf"):  # NaN fails too
        words = "an integer" if kind is int else "a number"
        raise ConfigError(f"{what} '{spec.text}': option {key} must be {words} >= {minimum:g}; got {text!r}")
    return value


def int_option(spec: Spec, key: str, default: int | None, *, minimum: int = 1) -> int | None:
    """An integer ``?key=`` option of a model spec (see number_option)."""
    return number_option(spec, key, default, minimum=minimum)


def choice_option(spec: Spec, key: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    """A ``?key=`` option of a model spec restricted to ``allowed``."""
    text = spec.option(key)
    if text is None:
        return default
    if text not in allowed:
        raise ConfigError(f"model '{spec.text}': option {key} must be one of {', '.join(allowed)}; got {text!r}")
    return text


def check_options(spec: Spec, allowed: tuple[str, ...], *, what: str) -> None:
    """Unknown ``?key=`` options are mistakes: say which, and what is allowed."""
    unknown = sorted(set(spec.options) - set(allowed))
    if unknown:
        allowed_text = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"{what} '{spec.text}': unknown option(s) {', '.join(unknown)} (allowed: {allowed_text})")
