"""Learning-rate range test (Smith 2015, as fastai's `lr_find`): raise the LR exponentially over a short
run, record the smoothed loss, suggest the LR of steepest descent. Model and optimizer are restored after.

Hand-written because neither timm nor torch ships one; it is a few lines over the training step.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def lr_find(model, optimizer, loss_fn, loader, device, run_dir: Path, start_lr: float = 1e-7, end_lr: float = 1.0,
            max_steps: int = 100) -> float:
    """Run the range test, save `lr_find.png` and `lr_find.csv` in `run_dir`, return the suggested LR."""
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps = min(max_steps, len(loader))
    gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs, losses, smooth = [], [], None
    model.train()
    for step, batch in enumerate(loader):
        if step >= steps or batch is None:
            break
        lr = start_lr * gamma**step
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = lr * base / max(base_lrs)  # keep the head/backbone ratio
        images, labels, _ = batch
        loss = loss_fn(model(images.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        smooth = loss.item() if smooth is None else 0.9 * smooth + 0.1 * loss.item()
        lrs.append(lr)
        losses.append(smooth / (1 - 0.9 ** (step + 1)) if step else smooth)
        if not math.isfinite(smooth) or smooth > 4 * min(losses):
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_opt)
    suggestion = suggest(lrs, losses)
    _plot(lrs, losses, suggestion, run_dir)
    return suggestion


def suggest(lrs: list[float], losses: list[float]) -> float:
    """LR where the loss falls fastest (most negative slope in log-LR)."""
    if len(lrs) < 3:
        return lrs[-1] if lrs else float("nan")
    slopes = np.gradient(np.asarray(losses), np.log(np.asarray(lrs)))
    return float(lrs[int(np.argmin(slopes))])


def _plot(lrs: list[float], losses: list[float], suggestion: float, run_dir: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "lr_find.png", dpi=100)
    plt.close(fig)
    np.savetxt(run_dir / "lr_find.csv", np.column_stack([lrs, losses]), delimiter=",", header="lr,loss", comments="")
