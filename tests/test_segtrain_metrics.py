"""Metrics and losses against independent numpy / hand computations."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from segtrain.losses import LOSSES, CrossEntropy, DiceLoss, build_loss
from segtrain.metrics import ConfusionMatrix, image_mious, summarize


def numpy_metrics(gt: np.ndarray, pred: np.ndarray, n: int, eval_mask: np.ndarray, ignore: int = 255,
                  rule: str = "standard"):
    """Per-class IoU by counting pixels class by class (no confusion matrix). standard: every
    class with a non-empty union counts (mmsegmentation / torchmetrics macro / Cityscapes);
    gt-present: only classes in the ground truth. A pixel whose ground truth is a class ignored
    in eval counts nowhere, like an ignore pixel (cityscapesScripts)."""
    labelled = gt != ignore
    valid = labelled & eval_mask[np.where(labelled, gt, 0)]
    ious, present = {}, []
    for c in range(n):
        g, p = (gt == c) & valid, (pred == c) & valid
        union = np.logical_or(g, p).sum()
        if eval_mask[c] and (g.sum() > 0 if rule == "gt-present" else union > 0):
            ious[c] = np.logical_and(g, p).sum() / union
            present.append(c)
    pixel_acc = (gt[valid] == pred[valid]).mean()
    return ious, float(np.mean([ious[c] for c in present])), float(pixel_acc)


@pytest.mark.parametrize("rule", ["standard", "gt-present"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_metrics_match_numpy_with_absent_classes_and_ignore(seed, rule):
    rng = np.random.default_rng(seed)
    n = 7
    gt = rng.choice([0, 1, 3, 4, 255], size=(3, 20, 30), p=[0.3, 0.2, 0.2, 0.2, 0.1]).astype(np.uint8)
    pred = rng.integers(0, n, size=gt.shape)  # predicts absent classes 2, 5, 6 too
    agree = (rng.random(gt.shape) < 0.5) & (gt != 255)
    pred[agree] = gt[agree]  # some agreement, so IoUs are not all ~0
    eval_mask = np.array([True, True, True, True, False, True, True])  # class 4 ignored in eval
    cm = ConfusionMatrix(n)
    for i in range(3):  # accumulated over batches == one dataset-level matrix
        cm.update(torch.from_numpy(gt[i]), torch.from_numpy(pred[i]))
    names = [f"c{i}" for i in range(n)]
    s = summarize(cm.numpy(), names, eval_mask, rule)
    ious, miou, acc = numpy_metrics(gt, pred, n, eval_mask, rule=rule)
    assert s["miou_rule"] == rule
    assert s["miou_by_rule"][rule] == s["miou"]
    assert s["miou"] == pytest.approx(miou, abs=1e-12)
    assert s["pixel_accuracy"] == pytest.approx(acc, abs=1e-12)
    for c in range(n):
        expected = ious.get(c)
        got = s["per_class_iou"][names[c]]
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got == pytest.approx(expected, abs=1e-12)
    assert s["absent_classes"] == ["c2", "c5", "c6"]
    assert s["ignored_classes"] == ["c4"]
    assert s["classes_evaluated"] == (6 if rule == "standard" else 3)  # c2, c5, c6 predicted: IoU 0
    if rule == "standard":
        assert [s["per_class_iou"][c] for c in ("c2", "c5", "c6")] == [0.0, 0.0, 0.0]
    assert cm.numpy().sum() == (gt != 255).sum()  # ignore pixels never counted


def cityscapes_iou(mat: np.ndarray, label: int, eval_mask: np.ndarray) -> float:
    """cityscapesScripts' getIouScoreForLabel, transcribed: false positives come only from
    ground-truth rows of classes not ignored in eval."""
    tp = mat[label, label]
    not_ignored = [c for c in range(len(mat)) if eval_mask[c] and c != label]
    fp = mat[not_ignored, label].sum()
    fn = mat[label, :].sum() - tp
    denom = tp + fp + fn
    return float("nan") if denom == 0 else tp / denom


def test_pixels_of_a_class_ignored_in_eval_are_no_false_positives():
    """A class with a train id of its own but ignore_in_eval (trained, not scored, e.g. Other in
    a custom table): predicting wall on its pixels must not lower wall's IoU, and a class
    predicted only there has an empty union (not a scored 0). Before, both happened."""
    names = ["wall", "floor", "other", "bed"]
    eval_mask = np.array([True, True, False, True])
    gt = np.array([[0, 0, 1, 1, 2, 2, 2, 2]])
    pred = np.array([[0, 0, 1, 0, 0, 3, 2, 1]])  # wall and bed predicted on 'other' pixels
    cm = ConfusionMatrix(4)
    cm.update(torch.from_numpy(gt), torch.from_numpy(pred))
    mat = cm.numpy()
    s = summarize(mat, names, eval_mask, "standard")
    assert s["per_class_iou"]["wall"] == pytest.approx(2 / 3)  # tp 2, fp 1 (a floor pixel), fn 0
    assert s["per_class_iou"]["floor"] == pytest.approx(1 / 2)
    assert s["per_class_iou"]["bed"] is None  # predicted only on ignored pixels: empty union
    assert s["per_class_iou"]["other"] is None
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)
    for c, name in enumerate(names):
        if eval_mask[c]:
            expected = cityscapes_iou(mat, c, eval_mask)
            got = s["per_class_iou"][name]
            assert (got is None) == np.isnan(expected) and (got is None or got == pytest.approx(expected))


@pytest.mark.parametrize("ignored", [False, True])
def test_per_class_csv_gives_each_iou_from_its_own_counts(tmp_path, ignored):
    """per_class_iou.csv's pred_pixels counted the predictions on every row, so under
    ignore_in_eval tp / (gt + pred - tp) of the file was not its iou (wall: 2/4 where it is 2/3).
    They are now counted on evaluated ground truth only; with no class ignored the file is
    what it was (every row)."""
    import csv

    from segtrain.report import write_per_class_csv

    names = ["wall", "floor", "other", "bed"]
    eval_mask = np.array([True, True, not ignored, True])
    gt = np.array([[0, 0, 1, 1, 2, 2, 2, 2]])
    pred = np.array([[0, 0, 1, 0, 0, 3, 2, 1]])
    cm = ConfusionMatrix(4)
    cm.update(torch.from_numpy(gt), torch.from_numpy(pred))
    mat = cm.numpy()
    write_per_class_csv(tmp_path / "c.csv", summarize(mat, names, eval_mask), mat, names)
    with open(tmp_path / "c.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["pred_pixels"]) for r in rows] == ([3, 1, 0, 0] if ignored else mat.sum(axis=0).tolist())
    for r, c in zip(rows, range(4), strict=True):
        tp, union = mat[c, c], int(r["gt_pixels"]) + int(r["pred_pixels"]) - mat[c, c]
        if r["iou"]:
            assert float(r["iou"]) == pytest.approx(tp / union, abs=1e-6)
    assert rows[0]["iou"] == ("0.666667" if ignored else "0.500000")


def test_eval_line_and_per_class_csv_read_a_real_summary(tmp_path):
    """`segtrain eval`'s console line (report.format_eval_line) and per_class_iou.csv, as they
    were written in the CLI before: every part of the line, n/a scores, TTA and skipped images."""
    from segtrain.config import TTAConfig, to_dict
    from segtrain.report import format_eval_line, write_per_class_csv

    names = ["wall", "floor", "other", "bed"]
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([[0, 0, 1, 1, 2, 2, 2, 2]]), torch.tensor([[0, 0, 1, 0, 0, 3, 2, 1]]))
    summary = summarize(cm.numpy(), names, np.array([True, True, False, True]))
    m = {"split": "test", "num_images": 3, "skipped_images": [], "label_mode": "trainIds",
         "tta": to_dict(TTAConfig()), **summary}
    assert format_eval_line(m, "rep") == (
        "test: standard mIoU 0.5833 (labels: trainIds), pixel accuracy 0.7500 over 3 images (2 classes evaluated, "
        "1 absent from the ground truth); report in rep")
    m.update(miou=None, pixel_accuracy=None, tta=to_dict(TTAConfig([0.75, 1.0], flip=True)),
             skipped_images=[{"id": "a", "problem": "x"}, {"id": "b", "problem": "y"}])
    assert format_eval_line(m, tmp_path) == (
        "test: standard mIoU n/a (TTA: flip, scales 0.75,1) (labels: trainIds), pixel accuracy n/a over 3 images "
        f"(2 classes evaluated, 1 absent from the ground truth, 2 unreadable left out); report in {tmp_path}")
    write_per_class_csv(tmp_path / "c.csv", summary, cm.numpy(), names)
    assert (tmp_path / "c.csv").read_text() == (
        "train_id,class,iou,accuracy,gt_pixels,pred_pixels,status\n"
        "0,wall,0.666667,1.000000,2,3,evaluated\n"
        "1,floor,0.500000,0.500000,2,1,evaluated\n"
        "2,other,,,4,0,ignored\n"
        "3,bed,,,0,0,absent from ground truth\n")


@pytest.mark.parametrize("rule", ["standard", "gt-present"])
def test_image_mious_are_each_images_own_miou(rule):
    """One batched matrix per image gives each image the mIoU counted on it alone (nan for an
    image with nothing to count), in batch order."""
    rng = np.random.default_rng(5)
    n = 6
    gt = rng.choice([0, 2, 3, 255], size=(4, 16, 24), p=[0.4, 0.3, 0.2, 0.1]).astype(np.uint8)
    pred = rng.integers(0, n, size=gt.shape)
    agree = (rng.random(gt.shape) < 0.6) & (gt != 255)
    pred[agree] = gt[agree]
    gt[3] = 255  # nothing labelled: no class counts under gt-present
    eval_mask = np.array([True, True, True, False, True, True])
    got = image_mious(torch.from_numpy(gt), torch.from_numpy(pred), n, eval_mask, rule)
    assert len(got) == 4
    for i in range(3):
        assert got[i] == pytest.approx(numpy_metrics(gt[i], pred[i], n, eval_mask, rule=rule)[1], abs=1e-12)
    if rule == "gt-present":
        assert np.isnan(got[3])
    assert len({round(v, 9) for v in got[:3]}) == 3  # three different images, three scores


def test_confusion_rows_are_ground_truth():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 1, 255]), torch.tensor([1, 1, 1, 2]))
    assert cm.numpy().tolist() == [[0, 2, 0], [0, 1, 0], [0, 0, 0]]
    s = summarize(cm.numpy(), ["a", "b", "c"])
    assert s["per_class_iou"] == {"a": 0.0, "b": pytest.approx(1 / 3), "c": None}
    assert s["miou"] == pytest.approx(1 / 6)


def test_standard_rule_counts_predicted_absent_classes_as_zero_and_skips_empty_unions():
    # gt: class 0 only; pred: half right, half class 1 (absent from gt); class 2 nowhere
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 1, 1]))
    std = summarize(cm.numpy(), ["a", "b", "c"])
    old = summarize(cm.numpy(), ["a", "b", "c"], rule="gt-present")
    assert std["miou_rule"] == "standard" and old["miou_rule"] == "gt-present"
    assert std["per_class_iou"] == {"a": 0.5, "b": 0.0, "c": None}
    assert std["miou"] == pytest.approx(0.25)  # mean of a and b: c's union is empty
    assert old["per_class_iou"] == {"a": 0.5, "b": None, "c": None}
    assert old["miou"] == pytest.approx(0.5)
    assert std["miou_by_rule"] == old["miou_by_rule"] == {"standard": 0.25, "gt-present": 0.5}
    assert std["absent_classes"] == old["absent_classes"] == ["b", "c"]
    with pytest.raises(ValueError, match="unknown mIoU rule"):
        summarize(cm.numpy(), ["a", "b", "c"], rule="macro")


def test_every_loss_is_zero_without_labelled_pixels_and_keeps_the_graph():
    logits = torch.randn(2, 4, 3, 5, requires_grad=True)
    target = torch.full((2, 3, 5), 255)
    for name, spec in LOSSES.items():
        for weight in (None, torch.tensor([1.0, 2.0, 0.5, 1.5])) if spec.uses_weights else (None,):
            loss = build_loss(name, 4, weight=weight)(logits, target)
            assert loss.item() == 0.0, name
            loss.backward()  # still differentiable (the run does not special-case such a batch)
            assert torch.isfinite(logits.grad).all()


def test_a_loss_changes_with_class_weights_exactly_when_it_says_it_uses_them():
    """LossSpec.uses_weights is what config.check_class_weights trusts: a loss that says it
    takes none must ignore a weight vector, and one that says it takes them must change."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0] = 255
    w = torch.tensor([1.0, 4.0, 0.25])
    for name, spec in LOSSES.items():
        plain, weighted = (build_loss(name, 3, weight=x)(logits, target).item() for x in (None, w))
        assert (plain != pytest.approx(weighted, rel=1e-4)) == spec.uses_weights, name


def test_dice_ignores_ignore_pixels_and_is_zero_for_perfect_logits():
    target = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    dice = DiceLoss(3, smooth=0.0)
    assert dice(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    changed = perfect.clone()
    changed[0, :, 1, 1] = torch.tensor([0.0, 0.0, 50.0])  # only the ignored pixel differs
    assert dice(changed, target).item() == pytest.approx(dice(perfect, target).item(), abs=1e-7)


def test_dice_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 3, (2, 5, 6))  # class 3 absent: not averaged
    target[0, 0, :] = 255
    p = logits.softmax(1).numpy()
    t = target.numpy()
    valid = t != 255
    dices = []
    for c in range(3):
        g = (t == c) & valid
        inter = p[:, c][g].sum()
        dices.append((2 * inter + 1) / (p[:, c][valid].sum() + g.sum() + 1))
    assert DiceLoss(4, smooth=1.0)(logits, target).item() == pytest.approx(1 - np.mean(dices), rel=1e-5)


def test_weighted_ce_is_weighted_mean_and_all_ignored_batch_is_zero():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    w = torch.tensor([1.0, 2.0, 0.5])
    ref = torch.nn.functional.cross_entropy(logits, target, weight=w)  # torch's weighted mean
    assert CrossEntropy(3, weight=w)(logits, target).item() == pytest.approx(ref.item(), rel=1e-6)
    empty = torch.full((1, 4, 4), 255)
    for name, spec in LOSSES.items():
        loss = build_loss(name, 3, 255, w if spec.uses_weights else None)(logits, empty)
        assert torch.isfinite(loss)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(KeyError, match=re.escape(f"available: {', '.join(LOSSES)}")):
        build_loss("focal", 3)
