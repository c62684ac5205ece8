"""--bisect's choice of where its partial reruns start: the original's newest periodic
checkpoint at or before the last identical step, never a link the job planted."""

from __future__ import annotations

from pathlib import Path

from reprise.commands.bisect import checkpoint_at_or_before


def test_the_newest_periodic_checkpoint_at_or_before_the_step_is_chosen(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (10, 20, 30):
        (folder / f"step_{step}.pt").write_bytes(f"state {step}".encode())
    (folder / "last.pt").write_bytes(b"last")
    (folder / "step_x.pt").write_bytes(b"not a step")
    chosen = checkpoint_at_or_before(tmp_path, 25)
    assert chosen is not None
    assert chosen[0] == "checkpoints/step_20.pt" and chosen[1].startswith("blake3:")
    assert chosen[2] == 20
    assert checkpoint_at_or_before(tmp_path, 30) is not None
    assert checkpoint_at_or_before(tmp_path, 30)[0] == "checkpoints/step_30.pt"  # type: ignore[index]
    assert checkpoint_at_or_before(tmp_path, 9) is None
    assert checkpoint_at_or_before(tmp_path, None) is None


def test_a_planted_link_is_passed_over_and_a_linked_folder_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "step_10.pt").write_bytes(b"state 10")
    (folder / "step_20.pt").symlink_to("/etc/passwd")
    chosen = checkpoint_at_or_before(tmp_path, 25)
    assert chosen is not None and chosen[0] == "checkpoints/step_10.pt"
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoints").symlink_to(folder)
    assert checkpoint_at_or_before(other, 25) is None
