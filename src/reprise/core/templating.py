"""Jinja templates: the packaged ones (templates/ ships inside the wheel) or a user's own."""

from __future__ import annotations

import json
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


def _packaged_dir() -> Path:
    packaged = resources.files("reprise") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    # An editable checkout: templates/ sits at the repository root, beside src/.
    return Path(__file__).resolve().parents[3] / "templates"


def docker_quoted(value: object) -> str:
    """``value`` as one double-quoted word of a Dockerfile's LABEL or ENV: JSON's escapes keep
    it on one line and its quotes closed, and ``\\$`` leaves nothing for the builder to expand."""
    return json.dumps(str(value)).replace("$", "\\$")


def template_text(name: str) -> str:
    return (_packaged_dir() / name).read_text(encoding="utf-8")


@cache
def _environment() -> jinja2.Environment:
    import shlex

    import jinja2

    env = jinja2.Environment(
        # A user's card template may {% extends "model_card.md.j2" %} and override its blocks.
        loader=jinja2.FileSystemLoader(_packaged_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders Dockerfiles and Markdown, not HTML
    )
    env.filters["shquote"] = shlex.quote
    env.filters["dockerq"] = docker_quoted
    return env


_compiled: dict[str, jinja2.Template] = {}
_compiled_lock = threading.Lock()


def _template(text: str) -> jinja2.Template:
    with _compiled_lock:
        template = _compiled.get(text)
    if template is None:
        template = _environment().from_string(text)
        with _compiled_lock:
            _compiled[text] = template
    return template


def warm_up(*names: str) -> threading.Thread:
    """Import Jinja and compile these packaged templates in the background.

    Started while the engine is busy (a container starting), so that rendering afterwards
    costs nothing: the import and compilation overlap with time spent waiting anyway.
    """

    def work() -> None:
        for name in names:
            _template(template_text(name))

    thread = threading.Thread(target=work, name="reprise-templates", daemon=True)
    thread.start()
    return thread


def render(text: str, context: dict[str, Any]) -> str:
    """Render template ``text`` with StrictUndefined: a missing variable is an error."""
    return _template(text).render(**context)


def error_line(exc: BaseException) -> tuple[str, int | None]:
    """Where a Jinja error happened: ("", line) in the rendered text itself, or (name, line) in
    a packaged template it extends; (message-only) line None when Jinja does not say."""
    import traceback

    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int) and getattr(exc, "name", None) is None:
        return "", lineno
    where: tuple[str, int | None] = ("", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in ("<template>", "<unknown>"):
            where = ("", frame.lineno)
        elif frame.filename.endswith(".j2"):
            where = (Path(frame.filename).name, frame.lineno)
    if where[1] is None and isinstance(lineno, int):
        return str(getattr(exc, "name", "") or ""), lineno
    return where
