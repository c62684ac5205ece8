"""Every error reprise raises on purpose derives from :class:`RepriseError`.

Each subclass carries the fields that say what went wrong and an ``exit_code``; the CLI prints
``message`` (plus ``hint``) without a traceback and exits with that code.

Exit codes (the README's table):
    0   success: the run succeeded, the reproduction is identical
    1   the job itself failed (its exit code, OOM, lost)
    2   bad usage or input: arguments, overrides, config values, a bundle or record refused
    3   the environment could not do it: engine, registry, host, disk, GPU runtime, image
    4   the project is not usable as it is: pyproject.toml, uv.lock, settings, git tree
    5   a reproduction (or diff) diverged
    6   a reproduction compared nothing: no output to prove identical
    7   a reproduction is inconclusive: a manifest is incomplete, and what both list agrees
    70  an internal error of reprise (a bug: please report it)
    130 interrupted
"""

from __future__ import annotations

EXIT_JOB_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_PROJECT = 4
EXIT_DIVERGED = 5
EXIT_NOTHING_COMPARED = 6
EXIT_INCONCLUSIVE = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
# Several verdicts' one exit code: the gravest, a divergence first (proof of a difference),
# then a failure to reproduce, then what proved nothing either way.
_GRAVITY = {0: 0, 6: 1, 7: 2, 2: 3, 4: 4, 3: 5, 130: 6, 5: 7, 70: 8}


def combined_exit(codes: list[int]) -> int:
    return max(codes, key=lambda code: (_GRAVITY.get(code, 5), code), default=0)


# Each verdict a comparison of outputs gives (``ManifestDiff.outcome``), with its exit code.
VERDICT_EXIT = {
    "identical": 0,
    "diverged": EXIT_DIVERGED,
    "nothing-compared": EXIT_NOTHING_COMPARED,
    "inconclusive": EXIT_INCONCLUSIVE,
}


class Detached(KeyboardInterrupt):
    """Ctrl-C while following a run that goes on (`attach`, `wait`): the CLI has said so
    ("detached"), and says nothing more ("interrupted" would be untrue)."""


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


class InvalidNameError(UsageError):
    """A value that becomes a path, a tag or a host action does not follow its grammar."""

    def __init__(self, message: str, *, field: str, value: object, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.field = field
        self.value = value


class RecordError(RepriseError):
    """A run record (run.json, a manifest, a bundle's records) is malformed or hostile."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or "the record was damaged or crafted; reprise uses nothing from it (restore it from a backup or a fresh bundle)",
        )
        self.path = path
        self.field = field


class ProjectError(RepriseError):
    """The project (pyproject.toml, uv.lock, git repository) is not usable as it is."""

    exit_code = EXIT_PROJECT

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


class JobGoneError(EngineError):
    """The job (container) a run was using no longer exists where it ran."""


class StorageError(RepriseError):
    """The disk refused a write (full, quota, read-only): the previous record is intact."""

    exit_code = EXIT_UNAVAILABLE


class BundleError(RepriseError):
    """A bundle is malformed, corrupt or hostile; carries the member concerned."""

    def __init__(self, message: str, *, member: str | None = None, hint: str | None = None) -> None:
        super().__init__(
            message, hint=hint or "ask for a fresh export of the bundle; nothing was imported"
        )
        self.member = member


class DataChangedError(RepriseError):
    """A dataset's content differs from the one the run was made with."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, changes: list[str]) -> None:
        super().__init__(
            "the data differs from the run's: " + "; ".join(changes),
            hint="restore the recorded data, or pass --allow-data-change to run anyway (the verdict says so)",
        )
        self.changes = changes


class TargetMismatchError(RepriseError):
    """--strict, and this machine differs from the original in a way that voids the bitwise
    guarantee; ``differences`` are the descriptions of those differences."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, differences: list[str]) -> None:
        super().__init__(
            "this machine differs from the original in ways that void bit-for-bit results: "
            + "; ".join(differences),
            hint="reproduce on a matching machine, or drop --strict to run and compare anyway",
        )
        self.differences = differences


class CardTemplateError(RepriseError):
    """A model card template does not compile or render; carries its path and line."""

    def __init__(
        self, message: str, *, path: str, line: int | None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line


class ExportError(RepriseError):
    """A run could not be exported to a tracker (its library missing, the target refused)."""

    exit_code = EXIT_UNAVAILABLE
