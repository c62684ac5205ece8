"""Every error reprise raises on purpose derives from :class:`RepriseError`.

Each subclass carries the fields that say what went wrong and an ``exit_code``; the CLI prints
``message`` (plus ``hint``) without a traceback and exits with that code.

Exit codes:
    1  the job itself failed, or a reproduction diverged
    2  usage or bad input (config, overrides, project files, arguments)
    3  the environment could not do it (engine, registry, image unavailable)
"""

from __future__ import annotations

EXIT_JOB_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class RepriseError(Exception):
    """Base of all user-facing reprise errors."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(RepriseError):
    """A bad argument or combination of arguments."""


class ProjectError(RepriseError):
    """The project (pyproject.toml, uv.lock, git repository) is not usable as it is."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class SettingsError(ProjectError):
    """A bad ``[tool.reprise]`` setting or REPRISE_* variable."""

    def __init__(self, message: str, *, key: str, value: object = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.key = key
        self.value = value


class ConfigError(RepriseError):
    """The run config (YAML) or an override is malformed or names an unknown key."""

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class LockError(ProjectError):
    """uv.lock is missing or does not match pyproject.toml."""


class DirtyTreeError(ProjectError):
    """The git tree has uncommitted changes and --allow-dirty was not given."""


class RunNotFoundError(RepriseError):
    """No run matches the given id, prefix or path."""

    def __init__(self, message: str, *, ref: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.ref = ref


class EngineError(RepriseError):
    """The Docker engine or the registry could not do what was asked."""

    exit_code = EXIT_UNAVAILABLE


class BuildError(EngineError):
    """``docker build`` failed; carries the failing step and the tail of its log."""

    def __init__(self, message: str, *, step: str | None, log_tail: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.step = step
        self.log_tail = log_tail

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.step:
            text += f"\n  failing step: {self.step}"
        if self.log_tail:
            tail = "\n".join("    " + line for line in self.log_tail.splitlines())
            text += f"\n  last lines of its log:\n{tail}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ImageUnavailableError(EngineError):
    """The image a run needs is neither local nor pullable."""
