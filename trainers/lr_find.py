"""Learning-rate range test (Smith 2015, as fastai's `lr_find`): raise the LR exponentially over a short run,
record the smoothed loss, suggest the LR of steepest descent.

It is a callback of the one training loop (`finetune.train_one_epoch`), so the test takes exactly the trainer's
steps: mixup/cutmix targets, precision, clipping and EMA included. Hand-written because neither timm nor torch
ships one; it is a few lines over the training step.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from runfolder import LR_FIND_PLOT, LR_FIND_TABLE, write_bytes, write_text

LR_FIND_STEPS = 100  # at most; fewer when an epoch is shorter
SMOOTHING = 0.9  # exponential moving average of the loss, bias-corrected as fastai does
DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum


class LRRangeTest:
    """Before each step: set the LR (`start_lr` to `end_lr`, exponentially, keeping the groups' ratios).
    After each step: record the smoothed loss; end the epoch at `steps` or when the loss diverges."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int, start_lr: float = 1e-7,
                 end_lr: float = 1.0) -> None:
        self.optimizer, self.steps, self.start_lr = optimizer, steps, start_lr
        self.gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
        self.ratios = [g["lr"] / max(group["lr"] for group in optimizer.param_groups) for g in optimizer.param_groups]
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._average = 0.0

    def before_step(self, step: int) -> None:
        lr = self.start_lr * self.gamma**step
        for group, ratio in zip(self.optimizer.param_groups, self.ratios, strict=True):
            group["lr"] = lr * ratio
        self.lrs.append(lr)

    def after_step(self, step: int, loss: torch.Tensor, seen: int, seconds: float) -> bool:
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss.item()
        self.losses.append(self._average / (1 - SMOOTHING**step))
        return step >= self.steps or not math.isfinite(self.losses[-1]) or self.losses[-1] > DIVERGED * min(
            self.losses)

    def suggestion(self) -> float:
        """The LR where the loss falls fastest (most negative slope in log-LR)."""
        if len(self.lrs) < 3:
            return self.lrs[-1] if self.lrs else float("nan")
        slopes = np.gradient(np.asarray(self.losses), np.log(np.asarray(self.lrs)))
        return float(self.lrs[int(np.argmin(slopes))])

    def save(self, run_dir: Path) -> None:
        """lr_find.png (the curve and the suggestion) and lr_find.csv (lr, smoothed loss) in `run_dir`."""
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        suggestion = self.suggestion()
        fig = Figure(figsize=(6, 4), layout="tight")  # no pyplot: no global figure state in the trainer
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(self.lrs, self.losses)
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.1e}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="Learning-rate range test")
        ax.legend()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100)
        write_bytes(Path(run_dir) / LR_FIND_PLOT, png.getvalue())
        rows = "".join(f"{lr!r},{loss!r}\n" for lr, loss in zip(self.lrs, self.losses, strict=True))
        write_text(Path(run_dir) / LR_FIND_TABLE, "lr,loss\n" + rows)
