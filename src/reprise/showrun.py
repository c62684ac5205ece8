"""`reprise show`: a run record, summarized for a person."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from reprise import keys
from reprise.card import reproduction_line
from reprise.metrics import parse_records, summarize


def describe_run(record: dict[str, Any], run_dir: Path) -> list[str]:
    image = record.get("image") or {}
    code = record.get("code") or {}
    lines = [
        f"run        {record['run_id']} ({record['experiment']})",
        f"dir        {run_dir}",
    ]
    status = str(record["status"])
    if record.get("exit_code") is not None:
        status += f" (exit code {record['exit_code']})"
    if record.get("reason"):
        status += f": {record['reason']}"
    lines.append(f"status     {status}")
    lines.append(
        f"times      created {record.get('created_at')}, finished {record.get('finished_at') or '-'}"
        + (f", {record['duration_s']} s" if record.get("duration_s") is not None else "")
    )
    lines.append(f"command    {shlex.join(record.get('command') or [])}")
    lines.append(f"image      {image.get('tag')} ({image.get('id')})")
    if image.get("repo_digest"):
        lines.append(f"pushed     {image['repo_digest']}")
    lines.append(f"base       {image.get('base_image')}")
    commit = f"{code.get('commit')}" + (f" ({code['branch']})" if code.get("branch") else "")
    if code.get("dirty"):
        commit += f", dirty: patch {code.get('patch_hash')}"
    lines.append(f"commit     {commit}")
    lines.append(
        f"seed       {record.get('seed')} ({record.get('seed_source')}), threads {record.get('threads')}"
    )
    overrides = " ".join(record["config"].get("overrides") or [])
    lines.append(f"config     {record['config']['hash']}" + (f"  {overrides}" if overrides else ""))
    for name, info in sorted((record.get("data") or {}).items()):
        lines.append(f"data       {name}: {info['hash']} ({info['files']} files)")
    if record.get("reproduces"):
        lines.append(f"reproduces {record['reproduces']}")
    try:
        text = (run_dir / keys.RUN_METRICS).read_text(encoding="utf-8")
    except OSError:
        text = ""
    for m in summarize(parse_records(text)):
        lines.append(f"metric     {m.name}: final {m.final:.6g}, best {m.best:.6g} ({m.goal})")
    for r in record.get("reproductions") or []:
        lines.append(f"verdict    {reproduction_line(r)}")
    if (run_dir / keys.RUN_CARD).is_file():
        lines.append(f"card       {run_dir / keys.RUN_CARD}")
    return lines
