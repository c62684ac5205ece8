"""The grammar of every name that becomes a path, a tag or a host action.

Run ids, experiment names, commits, dataset names, relative paths inside a run, image ids and
references, registries. Checked where a value enters (the CLI, settings, an import) and again on
every read of a record: ``.``, ``..``, ``/`` and absolute paths never pass. Pure.
"""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime

from reprise.core.errors import InvalidNameError

RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}(?:-[0-9]{6})?-[0-9a-f]{8}")
EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
SHA256 = IMAGE_ID
DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
# distribution/reference: domain[:port], path components, tag, digest.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
REGISTRY = re.compile(rf"{_DOMAIN}(?:/{_COMPONENT})*")
REPOSITORY = re.compile(_REPO)
TAG = re.compile(r"[\w][\w.-]{0,127}")
REFERENCE = re.compile(rf"({_REPO})(?::({TAG.pattern}))?(?:@(sha256:[0-9a-f]{{64}}))?")
MAX_PATH = 4096
# What a person calls a run (`reprise run --name`) and labels it with (`reprise tag`). A name
# starts with a letter, so that it never reads as a run id or a prefix of one.
RUN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
RUN_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+-]{0,63}")
# A sweep (`reprise run -m`): its start time and a random suffix.
SWEEP_ID = re.compile(r"sweep-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")
# `latest` (the newest run) and `latest~N` (the one N runs before it).
LATEST = re.compile(r"latest(?:~([0-9]{1,6}))?")
# A run id's random suffix alone (its last 8 hex digits).
RUN_SUFFIX = re.compile(r"[0-9a-f]{8}")
# Where an engine is: ssh://[user@]host[:port] (host may be an ~/.ssh/config alias),
# tcp://host:port, unix:///path. Never an option (no leading '-').
HOST = re.compile(
    r"ssh://(?:[A-Za-z0-9._][A-Za-z0-9._-]{0,63}@)?[A-Za-z0-9_][A-Za-z0-9._-]{0,252}(?::[0-9]{1,5})?"
    r"|tcp://[A-Za-z0-9_][A-Za-z0-9._-]{0,252}:[0-9]{1,5}"
    r"|unix:///[A-Za-z0-9._/-]{1,4000}"
    r"|slurm://[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"
)


def new_run_id(now: datetime | None = None, suffix: str | None = None) -> str:
    """Sortable by start time to the microsecond, unique by a random suffix:
    20261123-143012-482913-5f3a9c1e."""
    import secrets

    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-%f-") + (suffix or secrets.token_hex(4))


def _check(pattern: re.Pattern[str], value: object, field: str, what: str, example: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_PATH or not pattern.fullmatch(value):
        raise InvalidNameError(
            f"{field} {value!r} is not a valid {what}",
            field=field,
            value=value,
            hint=f"a {what} looks like {example}",
        )
    return value


def new_sweep_id(now: datetime | None = None) -> str:
    """sweep-20261123-143012-5f3a9c1e."""
    import secrets

    return (now or datetime.now(UTC)).strftime("sweep-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def sweep_id(value: object, field: str = "sweep id") -> str:
    return _check(SWEEP_ID, value, field, "sweep id", "sweep-20261123-143012-5f3a9c1e")


def run_id(value: object, field: str = "run id") -> str:
    return _check(RUN_ID, value, field, "run id", "20261123-143012-482913-5f3a9c1e")


def experiment(value: object, field: str = "experiment") -> str:
    return _check(
        EXPERIMENT, value, field, "experiment name", "'spiral' (letters, digits, '.', '_', '-')"
    )


def run_name(value: object, field: str = "run name") -> str:
    """A run's name: not ``latest`` and not 8 hex digits, which address runs already."""
    text = _check(
        RUN_NAME,
        value,
        field,
        "run name",
        "'baseline' (a letter, then letters, digits, '.', '_', '-')",
    )
    if text == "latest" or RUN_SUFFIX.fullmatch(text):
        raise InvalidNameError(
            f"{field} {text!r} reads as a run address ({'the newest run' if text == 'latest' else 'a run id suffix'})",
            field=field,
            value=text,
            hint="choose another name, e.g. 'baseline' or 'lr-sweep-2'",
        )
    return text


def run_tag(value: object, field: str = "tag") -> str:
    return _check(RUN_TAG, value, field, "tag", "'baseline', 'paper:fig3' or 'lr=0.1'")


def commit(value: object, field: str = "commit") -> str:
    return _check(COMMIT, value, field, "git commit", "40 (or 64) lowercase hex digits")


def image_id(value: object, field: str = "image id") -> str:
    return _check(IMAGE_ID, value, field, "image id", "sha256: and 64 hex digits")


def sha256_digest(value: object, field: str = "digest") -> str:
    return _check(IMAGE_ID, value, field, "sha256 digest", "sha256: and 64 hex digits")


def dataset(value: object, field: str = "dataset name") -> str:
    return _check(DATASET, value, field, "dataset name", "'train' (letters, digits, '_', '-')")


def env_name(value: object, field: str = "variable") -> str:
    return _check(ENV_NAME, value, field, "environment variable name", "WANDB_MODE")


def host(value: object, field: str = "host") -> str:
    return _check(
        HOST,
        value,
        field,
        "engine host",
        "ssh://user@gpu-box, tcp://box:2376 or unix:///var/run/docker.sock",
    )


def registry(value: object, field: str = "registry") -> str:
    text = value.rstrip("/") if isinstance(value, str) else value
    return _check(REGISTRY, text, field, "registry", "127.0.0.1:5000/team or ghcr.io/acme")


def reference(value: object, field: str = "image reference") -> str:
    return _check(
        REFERENCE,
        value,
        field,
        "image reference",
        "repo[:tag][@sha256:...], e.g. ghcr.io/acme/x@sha256:...",
    )


def relative_path(value: object, field: str = "path") -> str:
    """A normalized relative POSIX path: no '.', '..' or empty components, not absolute."""
    ok = (
        isinstance(value, str)
        and 0 < len(value) <= MAX_PATH
        and not value.startswith("/")
        and "\\" not in value
        and "\0" not in value
        and all(part not in ("", ".", "..") for part in value.split("/"))
        and posixpath.normpath(value) == value
    )
    if not ok:
        raise InvalidNameError(
            f"{field} {value!r} is not a relative path inside its folder",
            field=field,
            value=value,
            hint="'.', '..', empty components and absolute paths are refused",
        )
    return str(value)


def subdir(value: object, field: str = "code subdir") -> str:
    """A project folder inside a repository: '' (its top) or a relative path."""
    return "" if value == "" else relative_path(value, field)


def parse_image_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split ``repo[:tag][@sha256:...]`` into (repo, tag, digest); no validation."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    return ref, tag, digest
