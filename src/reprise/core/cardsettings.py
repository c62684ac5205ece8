"""``[tool.reprise.card]``: what a model card says that a run cannot know (what the model is
for, its limits, how it was evaluated, how to load it) and the Hugging Face front matter
(license, tags, datasets, metrics, library_name). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reprise.core.errors import SettingsError

# Prose sections: key -> the card's heading.
SECTIONS = {
    "intended-use": "Intended use",
    "limitations": "Limitations",
    "evaluation": "Evaluation",
    "how-to-load": "How to load the checkpoint",
}
_LISTS = ("tags", "datasets", "metrics")
_WORDS = ("license", "library-name")
KEYS = ("template", *_WORDS, *_LISTS, *SECTIONS)
MAX_TEXT = 16384
MAX_ITEMS = 64
# A front-matter word: a licence id, a library, a tag or a hub dataset id ("org/name").
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+:-]{0,127}")


@dataclass(frozen=True)
class CardSettings:
    template: Path | None = None
    license: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    intended_use: str | None = None
    limitations: str | None = None
    evaluation: str | None = None
    how_to_load: str | None = None

    def section(self, key: str) -> str | None:
        value = getattr(self, key.replace("-", "_"))
        return value if isinstance(value, str) else None


def _fail(key: str, value: object, what: str, hint: str | None = None) -> SettingsError:
    return SettingsError(
        f"[tool.reprise.card] {key} must be {what}", key=f"card.{key}", value=value, hint=hint
    )


def _word(key: str, value: object) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise _fail(key, value, "one word (letters, digits, '.', '_', '-', '/', '+', ':')")
    return value


def _text(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _fail(key, value, f"Markdown text of at most {MAX_TEXT} characters")
    return value.strip()


def _list(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise _fail(key, value, f"a list of at most {MAX_ITEMS} words")
    return tuple(_word(key, item) for item in value)


def parse_card(value: object, template: Path | None, *, resolve: object = None) -> CardSettings:
    """The ``[tool.reprise.card]`` table; ``template`` is the ``card-template`` setting (or its
    variable), which wins over the table's own ``template``; ``resolve`` makes that one a path."""
    if value is None:
        return CardSettings(template=template)
    if not isinstance(value, dict):
        raise SettingsError("[tool.reprise.card] must be a table", key="card", value=value)
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise SettingsError(
            f"unknown [tool.reprise.card] key(s): {', '.join(unknown)}",
            key=f"card.{unknown[0]}",
            hint=f"known keys: {', '.join(KEYS)}",
        )
    if template is None and value.get("template") is not None:
        assert callable(resolve)
        template = resolve("card.template", value["template"])
    fields: dict[str, object] = {}
    for key in _WORDS:
        if value.get(key) is not None:
            fields[key.replace("-", "_")] = _word(key, value[key])
    for key in _LISTS:
        if value.get(key) is not None:
            fields[key] = _list(key, value[key])
    for key in SECTIONS:
        if value.get(key) is not None:
            fields[key.replace("-", "_")] = _text(key, value[key])
    return CardSettings(template=template, **fields)  # type: ignore[arg-type]
