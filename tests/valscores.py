"""Val mIoU pinned per epoch, for tests of the logic that reads it (early stop, best.pt,
plateau): on tiny trees a tiny lr does not keep the real score from moving (BatchNorm
statistics still change), so such tests must not depend on training dynamics."""

from __future__ import annotations

from segtrain import engine


def pin_val_miou(monkeypatch, scores: list[float]) -> None:
    """Epoch e's val mIoU is scores[e - 1] (the metrics row the run records and acts on)."""
    real = engine._metrics_row

    def pinned(epoch, *args, **kwargs):
        row = real(epoch, *args, **kwargs)
        row["val_miou"] = scores[epoch - 1]
        return row

    monkeypatch.setattr(engine, "_metrics_row", pinned)
