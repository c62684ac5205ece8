"""A data order that a resumed run continues exactly: the shuffle of each epoch comes from
(seed, epoch) alone, a DataLoader's workers are seeded from it too, and the position within
the epoch is part of the checkpoint.

torch's own DataLoader draws its shuffle and its workers' base seed from the global RNG when
an epoch's iterator is made; a run resumed mid-epoch has that RNG at a later state and would
see another order. ``ResumableSampler`` and ``loader()`` take neither from the global RNG.

    sampler = ResumableSampler(len(dataset), seed=seed())
    for epoch in range(start_epoch, epochs):
        for batch in loader(dataset, sampler, epoch, batch_size=32, num_workers=2):
            ...
        # save_checkpoint(..., sampler=sampler) holds the epoch and the position
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any


class ResumableSampler:
    """Indices 0..n-1 in an order fixed by (seed, epoch); counts what it handed out."""

    def __init__(self, n: int, *, seed: int | None, shuffle: bool = True) -> None:
        from reprise_runtime.paths import seed as run_seed

        self.n = n
        self.seed = seed if seed is not None else (run_seed() or 0)
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0  # indices of this epoch already handed out

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def order(self) -> list[int]:
        import torch

        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return [int(i) for i in torch.randperm(self.n, generator=g)]

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        while self.position < self.n:
            index = order[self.position]
            self.position += 1
            yield index
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        return self.n - self.position

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "n": self.n}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("n") != self.n or state.get("seed") != self.seed:
            raise ValueError(
                f"the checkpoint's data order is for {state.get('n')} items with seed "
                f"{state.get('seed')}, not {self.n} with seed {self.seed}"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class _BatchPosition:
    """Batches of the sampler's indices; the sampler's position moves as batches are
    *consumed* by the training loop (not as workers prefetch them)."""

    def __init__(self, sampler: ResumableSampler, batch_size: int, drop_last: bool) -> None:
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        order = self.sampler.order()
        start = self.sampler.position
        for begin in range(start, self.sampler.n, self.batch_size):
            batch = order[begin : begin + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                break
            yield batch

    def __len__(self) -> int:
        left = self.sampler.n - self.sampler.position
        return left // self.batch_size if self.drop_last else -(-left // self.batch_size)


def _seed_worker(worker_id: int) -> None:
    import numpy as np
    import torch

    seed = torch.initial_seed() % 2**32  # set by the loader from its own generator
    random.seed(seed)
    np.random.seed(seed)


def loader(
    dataset: Any,
    sampler: ResumableSampler,
    epoch: int,
    *,
    batch_size: int,
    num_workers: int = 0,
    drop_last: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """The batches of ``epoch`` from the sampler's position on, through a torch DataLoader
    whose workers are seeded from (seed, epoch), never from the global RNG."""
    import torch

    sampler.set_epoch(epoch)
    batches = _BatchPosition(sampler, batch_size, drop_last)
    g = torch.Generator().manual_seed(sampler.seed * 1_000_003 + epoch + 7_919)
    data = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        worker_init_fn=_seed_worker if num_workers else None,
        generator=g,
        **kwargs,
    )
    for batch, indices in zip(data, batches, strict=True):
        sampler.position += len(indices)
        yield batch
    if sampler.position >= sampler.n or drop_last:
        sampler.epoch, sampler.position = epoch + 1, 0
