"""`reprise build --verify RUN` (and `reproduce --rebuild`): rebuild a run's image from its
recorded Dockerfile and uv.lock, and prove it the recorded one, or say where it is not.

Layers are packed deterministically (``core.layers``), so a rebuild of the same lock on the
same base is the same bytes: the same diff ids, and (the config being reprise's own too) the
same image id. When it is not, the first layer that differs is named, with the packages in
it whose version or installed files (their RECORD) differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.commands.reproduce import ensure_code, recorded_code
from reprise.commands.rerun_image import rebuild_image
from reprise.core.layers import environment_verdict
from reprise.core.progress import Say
from reprise.core.settings import Settings
from reprise.edges.runstore import read_record


def verify(run_dir: Path, settings: Settings | None, repo: Path | None, say: Say) -> dict[str, Any]:
    """Rebuild ``run_dir``'s image and compare (see the module's docstring)."""
    record = read_record(run_dir)
    code = recorded_code(record, run_dir, repo)
    code_path = ensure_code(code, run_dir.parent.parent, repo)
    rebuilt = rebuild_image(record, run_dir, code_path, settings, say, force=True)
    verdict = environment_verdict(record["image"], rebuilt.record)
    verdict["run_id"] = record["run_id"]
    return verdict
