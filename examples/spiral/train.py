"""reprise's example: an MLP learns interleaved spirals generated from the seed.

It never seeds anything itself: inside reprise the runtime has seeded Python, NumPy and torch
before this file runs. It reads its config from $REPRISE_CONFIG, logs metrics to
logs/metrics.jsonl and saves a full-state checkpoint and its predictions.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import yaml

from reprise_runtime import checkpoints_dir, log_metrics, outputs_dir, save_checkpoint


def make_spirals(points: int, classes: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for c in range(classes):
        r = torch.linspace(0.05, 1.0, points)
        theta = torch.linspace(c * 2 * math.pi / classes, (c + 2.5) * 2 * math.pi / classes, points)
        theta = theta + torch.randn(points) * noise
        xs.append(torch.stack([r * torch.sin(theta), r * torch.cos(theta)], dim=1))
        ys.append(torch.full((points,), c, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def build_model(hidden: int, layers: int, classes: int) -> torch.nn.Module:
    mods: list[torch.nn.Module] = [torch.nn.Linear(2, hidden), torch.nn.ReLU()]
    for _ in range(layers - 1):
        mods += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(hidden, classes))
    return torch.nn.Sequential(*mods)


def main() -> None:
    config = yaml.safe_load(Path(os.environ.get("REPRISE_CONFIG", "config.yaml")).read_text())
    d, m, o, t = config["data"], config["model"], config["optim"], config["train"]
    x, y = make_spirals(d["points_per_class"], d["classes"], d["noise"])
    perm = torch.randperm(len(x))
    split = int(0.8 * len(x))
    train_idx, val_idx = perm[:split], perm[split:]
    # A NumPy draw too, so both global RNGs shape the result.
    jitter = torch.from_numpy(np.random.normal(0.0, 0.01, size=x.shape).astype(np.float32))
    x_train, y_train = x[train_idx] + jitter[train_idx], y[train_idx]
    x_val, y_val = x[val_idx], y[val_idx]

    model = build_model(m["hidden"], m["layers"], d["classes"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    step = 0
    for epoch in range(1, t["epochs"] + 1):
        model.train()
        order = torch.randperm(len(x_train))
        total = 0.0
        for start in range(0, len(order), t["batch_size"]):
            batch = order[start : start + t["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            step += 1
        if epoch % t["eval_every"] == 0 or epoch == t["epochs"]:
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = loss_fn(logits, y_val).item()
                val_acc = (logits.argmax(dim=1) == y_val).float().mean().item()
            train_loss = total / len(x_train)
            log_metrics(
                step=step, epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_acc=val_acc
            )
            print(
                f"epoch {epoch:3d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  val_acc {val_acc:.3f}"
            )

    save_checkpoint(checkpoints_dir() / "final.pt", model=model, optimizer=optimizer, step=step)
    with torch.no_grad():
        predictions = model(x_val).argmax(dim=1)
    out = outputs_dir()
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x_val, "y": y_val, "pred": predictions}, out / "predictions.pt")
    (out / "summary.json").write_text(
        json.dumps({"val_acc": val_acc, "steps": step}, sort_keys=True, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
