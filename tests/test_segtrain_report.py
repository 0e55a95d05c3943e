"""Report figures read as a person needs them: the figure objects are inspected (legends,
axis limits, labels) instead of pixels."""

from __future__ import annotations

import numpy as np
import pytest

from segtrain import report

NAMES = ["wall", "floor", "chair", "table", "lamp"]
COLORS = [(128, 0, 0), (0, 128, 0), (128, 0, 128), (128, 128, 128), (0, 0, 128)]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save (still open, so they can be inspected)."""
    saved = []
    monkeypatch.setattr(report, "_save", lambda fig, path: saved.append(fig))
    yield saved
    plt = report._pyplot()
    for fig in saved:
        plt.close(fig)


def test_panels_have_a_legend_of_the_classes_in_each_mask(figures, tmp_path):
    gt = np.zeros((8, 10), np.uint8)
    gt[:, 6:] = 2  # chair: 32 px, wall: 48 px
    gt[0, 0] = 255
    pred = np.full((8, 10), 1, np.uint8)
    pred[:2, :] = 4  # lamp 20 px, floor 60 px
    image = np.zeros((8, 10, 3), np.uint8)
    report.plot_panels([("img", image, gt, pred)], "t", tmp_path / "p.png", NAMES, COLORS)
    axes = figures[0].axes
    assert axes[0].get_legend() is None  # the photo needs none
    labels = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes[1:3]]
    assert labels == [["wall", "chair", "ignore / unlabelled"], ["floor", "lamp"]]  # most pixels first
    colors = [tuple(np.round(np.array(h.get_facecolor()[:3]) * 255).astype(int))
              for h in axes[2].get_legend().legend_handles]
    assert colors == [COLORS[1], COLORS[4]]


def test_panel_legend_is_capped_with_a_count_of_the_rest(figures, tmp_path):
    gt = np.arange(5, dtype=np.uint8).repeat(4).reshape(4, 5)
    report.plot_panels([("img", np.zeros((4, 5, 3), np.uint8), gt, gt)], "t", tmp_path / "p.png", NAMES,
                       COLORS, max_legend=3)
    texts = [t.get_text() for t in figures[0].axes[1].get_legend().get_texts()]
    assert len(texts) == 4 and texts[-1] == "+2 more"


def test_per_class_bars_tell_zero_from_not_scored_and_scale_to_the_data(figures, tmp_path):
    summary = {"per_class_iou": {"wall": 0.12, "floor": 0.0, "chair": None, "table": 0.004, "lamp": None},
               "miou": 0.0567, "miou_rule": "standard", "ignored_classes": ["lamp"],
               "absent_classes": ["floor", "chair"]}
    report.plot_per_class_iou(summary, COLORS, tmp_path / "b.png")
    ax = figures[0].axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "0.00 (absent from ground truth)" in texts  # scored 0: predicted, not there
    assert "4.0e-03" in texts  # small but not zero
    assert "n/a (absent from ground truth and prediction)" in texts and "n/a (ignored in eval)" in texts
    assert [t.get_text() for t in ax.get_yticklabels()] == list(summary["per_class_iou"])
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 8
    assert ax.get_xlim()[1] < 0.25  # 0.12 at most: not squeezed into 0-1


def test_curves_scale_the_miou_axis_to_the_run(figures, tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,train_loss,val_loss,val_miou,lr\n1,3.0,2.9,0.05,0.01\n2,2.5,2.6,0.09,0.005\n")
    assert report.plot_curves(csv, tmp_path / "c.png")
    top = figures[0].axes[1].get_ylim()[1]
    assert 0.09 < top < 0.15


def test_confusion_rows_without_ground_truth_are_not_shown_as_zeros(figures, tmp_path):
    mat = np.array([[3, 1, 0], [0, 0, 0], [0, 2, 2]])
    report.plot_confusion(mat, NAMES[:3], tmp_path / "m.png")
    data = figures[0].axes[0].images[0].get_array()
    assert data.mask[1].all() and not data.mask[0].any()
    assert data[0, 0] == pytest.approx(0.75) and data[2, 1] == pytest.approx(0.5)
