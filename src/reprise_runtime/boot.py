"""Applied at the start of every Python process in a reprise container (via sitecustomize).

With REPRISE_SEED set it seeds Python's ``random`` at once, and NumPy's and torch's global RNGs
as soon as those are imported (before the importing code gets them back), turns on torch's
deterministic algorithms and cuDNN's deterministic mode, and fixes torch's intra-op thread
count to REPRISE_NUM_THREADS. An unmodified script that never seeds is thereby deterministic.

At exit, the first process writes what it saw (Python, packages, torch/CUDA/cuDNN, devices) to
REPRISE_RUNTIME_RECORD. Nothing here may break the user's program: failures become warnings.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

_applied: dict[str, Any] = {}


def _warn(what: str, exc: BaseException) -> None:
    print(f"reprise runtime: warning: {what}: {exc!r}", file=sys.stderr)


def _seed_numpy(module: ModuleType, seed: int) -> None:
    module.random.seed(seed)
    _applied["numpy"] = True


MODES = ("strict", "warn", "off")
_nondeterministic: list[str] = []


def _note_nondeterministic(message: str) -> None:
    """From torch's warning in `warn` mode: the operation without a deterministic
    implementation (its name is the message's first words)."""
    what = message.split(" does not have a deterministic implementation")[0].strip()
    if what and what not in _nondeterministic and len(_nondeterministic) < 100:
        _nondeterministic.append(what[:200])


def _watch_warnings() -> None:
    import warnings

    original = warnings.showwarning

    def showwarning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if "does not have a deterministic implementation" in text:
            _note_nondeterministic(text)
        original(message, category, *args, **kwargs)

    warnings.showwarning = showwarning


def _seed_torch(module: ModuleType, seed: int, threads: int | None, mode: str = "strict") -> None:
    module.manual_seed(seed)  # CPU and every CUDA device
    if mode in ("strict", "warn"):
        module.use_deterministic_algorithms(True, warn_only=mode == "warn")
        module.backends.cudnn.deterministic = True
        module.backends.cudnn.benchmark = False
        if mode == "warn":
            _watch_warnings()
    _applied["determinism"] = mode
    if threads:
        module.set_num_threads(threads)
    _applied["torch"] = True
    try:
        from reprise_runtime import fingerprint

        fingerprint.install(module, os.environ)
    except Exception as exc:  # noqa: BLE001 - never break the user's program
        _warn("step fingerprints are off", exc)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a hook right after a top-level module has executed, once."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = hooks

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        del self.hooks[fullname]
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            try:
                hook(module)
            except Exception as exc:  # noqa: BLE001 - never break the user's program
                _warn(f"could not seed {fullname}", exc)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _record() -> None:
    path = os.environ.get("REPRISE_RUNTIME_RECORD")
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return  # another process of this run wrote it first, or no place to write
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(describe(), fh, indent=2, sort_keys=True)
    except Exception as exc:  # noqa: BLE001 - never break the user's program
        _warn("could not write the runtime record", exc)


def describe() -> dict[str, Any]:
    """What this process sees: interpreter, installed packages, torch and its devices."""
    from importlib import metadata

    packages = sorted(
        {
            f"{d.metadata['Name']}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"]
        },
        key=str.lower,
    )
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": packages,
        "seeded": sorted(["python", *(k for k in _applied if k in ("numpy", "torch"))]),
        "determinism": _applied.get("determinism"),
        "nondeterministic_ops": list(_nondeterministic),
        "seed": os.environ.get("REPRISE_SEED"),
    }
    if "numpy" in sys.modules:
        info["numpy"] = sys.modules["numpy"].__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        t: dict[str, Any] = {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
            "num_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "devices": [],
        }
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                t["devices"].append(
                    {
                        "name": p.name,
                        "capability": f"{p.major}.{p.minor}",
                        "sm_count": p.multi_processor_count,
                        "memory": p.total_memory,
                    }
                )
        info["torch"] = t
        try:
            from reprise_runtime import fingerprint

            active = fingerprint.active()
            if active is not None:
                info["fingerprints"] = active.summary()
        except Exception as exc:  # noqa: BLE001 - never break the user's program
            _warn("could not describe the step fingerprints", exc)
    return info


PROJECT_LINKS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "reprise-project.json")


def link_project(path: str = PROJECT_LINKS) -> None:
    """Put the project's own packages on sys.path, as an editable install's .pth would: the
    import roots (src/ or flat) of the code at the commit, those that exist, at the end."""
    try:
        with open(path, encoding="utf-8") as fh:
            roots = json.load(fh).get("import_roots") or []
    except FileNotFoundError:
        return
    for root in roots:
        if isinstance(root, str) and os.path.isdir(root) and root not in sys.path:
            sys.path.append(root)


CONFIG_READ_MARKER = "config-read"


def watch_config(config: str, marker: str) -> None:
    """Note (once, in ``marker``) that a Python process of the job opened the run's config:
    an audit hook sees every open() and os.open() of the process."""
    try:
        st = os.stat(config)
    except OSError:
        return
    target = (st.st_dev, st.st_ino)
    done: list[bool] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if done or event != "open" or not args:
            return
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        try:
            # One stat per open (the file's identity), not a realpath walk of every component.
            found = os.stat(path)
            if (found.st_dev, found.st_ino) != target:
                return
            done.append(True)
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            os.close(fd)
        except OSError:
            return  # already noted by another process, or nowhere to note it

    sys.addaudithook(hook)


def apply(environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    seed_text = environ.get("REPRISE_SEED")
    if seed_text:
        seed = int(seed_text)
        threads_text = environ.get("REPRISE_NUM_THREADS")
        threads = int(threads_text) if threads_text else None
        mode = environ.get("REPRISE_DETERMINISM", "strict")
        mode = mode if mode in MODES else "strict"
        random.seed(seed)
        hooks: dict[str, Callable[[ModuleType], None]] = {}
        if "numpy" in sys.modules:
            _seed_numpy(sys.modules["numpy"], seed)
        else:
            hooks["numpy"] = lambda m: _seed_numpy(m, seed)
        if "torch" in sys.modules:
            _seed_torch(sys.modules["torch"], seed, threads, mode)
        else:
            hooks["torch"] = lambda m: _seed_torch(m, seed, threads, mode)
        sys.meta_path.insert(0, _AfterImport(hooks))
    if environ.get("REPRISE_RUNTIME_RECORD"):
        atexit.register(_record)
    record = environ.get("REPRISE_RUNTIME_RECORD")
    if environ.get("REPRISE_CONFIG") and record:
        watch_config(
            environ["REPRISE_CONFIG"], os.path.join(os.path.dirname(record), CONFIG_READ_MARKER)
        )


try:
    link_project()
except Exception as exc:  # noqa: BLE001 - never break the user's program
    _warn("the project's packages could not be put on sys.path", exc)
try:
    apply()
except Exception as exc:  # noqa: BLE001 - never break the user's program
    _warn("seeding failed", exc)
