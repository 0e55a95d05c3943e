"""The `segtrain` command: a thin click shell over engine / inference / bench functions."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from segtrain.config import (
    AUGMENT_ON,
    AUGMENTS,
    DEPTH_ENCODINGS,
    DEVICES,
    FUSIONS,
    INPUTS,
    LOSS_NAMES,
    MID_FUSION_MODELS,
    MIOU_RULES,
    OPTIMIZERS,
    SCHEDULERS,
    BenchConfig,
    EvalConfig,
    PredictConfig,
    TrainConfig,
    TTAConfig,
    build_config,
    check_augment_on,
    load_config_file,
    parse_scales,
)
from segtrain.utils import SegtrainError, check_out_dir, check_out_file, parse_hw, quiet_opencv

log = logging.getLogger("segtrain")
_T = TrainConfig()


def short_model_list(names) -> str:
    """`unet, unet_small, fcn8s` -> `unet*, fcn8s`: a model and its `_` variants as one glob."""
    names = list(names)
    bases = [n for n in names if not any(n.startswith(f"{b}_") for b in names)]
    return ", ".join(b + ("*" if any(n.startswith(f"{b}_") for n in names) else "") for b in bases)


class CliError(click.ClickException):
    """One-line 'Error: ...' and exit 2 (usage error: bad path, file or value)."""

    exit_code = 2


def _one_line(e: Exception) -> str:
    """DataLoader workers wrap exceptions in a traceback; keep only the original message."""
    msg = str(e).strip()
    if "Original Traceback" in msg:
        last = msg.splitlines()[-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return msg.splitlines()[0] if msg else type(e).__name__


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except SegtrainError as e:
        raise CliError(_one_line(e)) from None
    except RuntimeError as e:  # a SegtrainError raised in a DataLoader worker comes back wrapped
        if "Error" in str(e) and "DataLoader worker" in str(e) and "segtrain" in str(e):
            raise CliError(_one_line(e)) from None
        raise


def _size(ctx, param, value):
    if value is None:
        return None
    try:
        return list(parse_hw(value))
    except SegtrainError as e:
        raise click.BadParameter(str(e)) from None


def _model_opts(values) -> dict:
    import yaml

    opts = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--model-opt")
        k, v = item.split("=", 1)
        try:
            opts[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise click.BadParameter(f"{item!r}: the value is not valid YAML", param_hint="--model-opt") from None
    return opts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(quiet: bool) -> None:
    """Train, evaluate and predict segmentation models on Cityscapes-style trees
    (a folder with dataset.json, e.g. `sunrgbd convert` output)."""
    quiet_opencv()
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="segtrain: %(message)s", stream=sys.stderr)
    for h in logging.getLogger().handlers:  # a run raises segtrain's level for train.log, not the console's
        if type(h) is logging.StreamHandler and h.stream is sys.stderr:
            h.setLevel(level)


@main.command("run")
@click.argument("model")
@click.option("--data", type=click.Path(), help="Clean tree (folder with dataset.json).")
@click.option("--out", type=click.Path(), help="Run folder [default: runs/<model>].")
@click.option("--config", "config_file", type=click.Path(), help="YAML with defaults; flags override it.")
@click.option("--epochs", type=int, help=f"[default: {_T.epochs}]")
@click.option("--batch-size", type=int, help=f"[default: {_T.batch_size}]")
@click.option("--size", callback=_size, help="Resize every sample to HxW, e.g. 480x640.")
@click.option("--crop", callback=_size, help="Train on random HxW crops (validate on full images).")
@click.option("--lr", type=float, help=f"[default: {_T.lr}]")
@click.option("--weight-decay", type=float, help=f"[default: {_T.weight_decay}]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help=f"[default: {_T.optimizer}]")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), help=f"[default: {_T.scheduler}]")
@click.option("--warmup-steps", type=int, help="Linear lr warm-up over the first N optimizer steps; the "
              f"scheduler runs over the steps after it; 0 = off [default: {_T.warmup_steps}].")
@click.option("--warmup-ratio", type=float, help="The warm-up starts at --lr x this "
              f"[default: {_T.warmup_ratio:g}].")
@click.option("--loss", type=click.Choice(LOSS_NAMES), help=f"[default: {_T.loss}]")
@click.option("--class-weights", help="Weighting method in dataset.json class_weights, or none "
              "[default: the dataset's default for wce, none otherwise].")
@click.option("--augment", type=click.Choice(AUGMENTS), help=f"[default: {_T.augment}]")
@click.option("--augment-on", type=click.Choice(AUGMENT_ON), help="Where --augment basic runs: loader = "
              f"in the workers, device = batched on the GPU, auto = device on CUDA (none: nothing to "
              f"move) [default: {_T.augment_on}].")
@click.option("--early-stop", type=int, help=f"Patience in epochs on val mIoU, 0 = off [default: {_T.early_stop}]")
@click.option("--grad-clip", type=float, help="Max gradient norm, 0 = off [default: 0].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA [default: on].")
@click.option("--compile/--no-compile", "compile_model", default=None, help="torch.compile the model.")
@click.option("--device", type=click.Choice(DEVICES), help="[default: auto]")
@click.option("--workers", type=int, help="DataLoader workers [default: cores - 2, at least 1].")
@click.option("--seed", type=int, help=f"[default: {_T.seed}]")
@click.option("--model-opt", multiple=True, help="Model option KEY=VALUE, e.g. base_width=8 (repeatable).")
@click.option("--val-split", help=f"[default: {_T.val_split}]")
@click.option("--max-train-batches", type=int, help="Cap batches per epoch (quick experiments).")
@click.option("--train-parts", help="Parts to train: head | decoder,head | all; the rest is frozen, "
              "BatchNorm statistics included [default: all].")
@click.option("--pretrained", help="Encoder weights: a timm name listed by `segtrain models` (e.g. "
              "convnext_tiny.fb_in22k; read from the Hugging Face cache, downloaded there when missing) or a "
              "local PyTorch / .safetensors file (timm / torchvision / facebookresearch keys; docs/models.md).")
@click.option("--init-from", type=click.Path(), help="Start from another run's checkpoint (same model; "
              "a different class table rebuilds the head).")
@click.option("--sync-bn/--no-sync-bn", default=None, help="SyncBatchNorm across processes under torchrun.")
@click.option("--miou-rule", type=click.Choice(MIOU_RULES), help="Val mIoU: standard counts every class "
              "predicted or labelled (IoU 0 when predicted but absent); gt-present only classes in the "
              "ground truth (the old rule) [default: standard].")
@click.option("--inputs", type=click.Choice(INPUTS), help="What the network sees: rgb, rgbd (RGB + depth) or "
              "depth alone [default: rgb].")
@click.option("--depth-encoding", type=click.Choice(DEPTH_ENCODINGS), help="Depth as metres (clipped, "
              "normalised with dataset.json depth_mean/std) or inverse depth [default: metres].")
@click.option("--fusion", type=click.Choice(FUSIONS), help="early: depth as extra input channels (any model); "
              f"mid: two encoders with SE fusion per stage ({short_model_list(MID_FUSION_MODELS)}) "
              "[default: early].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt, exactly.")
def run_cmd(model, data, out, config_file, resume, model_opt, compile_model, **flags):
    """Train MODEL (see `segtrain models`) on --data, writing checkpoints and metrics to --out.

    Under `torchrun --nproc_per_node=N -m segtrain run …` it trains with DistributedDataParallel
    (--batch-size is the global batch); only rank 0 writes."""
    from segtrain.engine import train

    cli = {k: v for k, v in flags.items() if v is not None}
    cli["model"] = model
    if data is not None:
        cli["data"] = data
    if compile_model is not None:
        cli["compile"] = compile_model
    if model_opt:
        cli["model_options"] = _model_opts(model_opt)
    layers = []
    file_layer = _guard(load_config_file, config_file) if config_file else {}
    out = out or file_layer.get("out") or f"runs/{model}"
    cli["out"] = out
    _guard(check_out_dir, out)
    if resume:
        saved = Path(out) / "config.yaml"
        if not saved.is_file():
            raise CliError(f"{saved}: not found; nothing to resume in {out}")
        layers.append(_guard(load_config_file, saved))
    layers += [file_layer, cli]
    cfg = _guard(build_config, TrainConfig, *layers)
    if resume and "data" not in cli and "data" not in file_layer and not Path(cfg.data).is_dir():
        # a run folder moved (or a relative path from another working folder): say where it came from
        raise CliError(f"{cfg.data}: data folder not found (the `data` of {saved}); give --data DIR")
    result = _guard(train, cfg, resume=resume, progress=sys.stderr.isatty())
    if os.environ.get("RANK", "0") != "0":
        return
    best = "n/a" if result.best_miou is None else f"{result.best_miou:.4f} (epoch {result.best_epoch})"
    click.echo(f"{result.stopped}: {result.epochs_completed} epochs, best val mIoU {best}; "
               f"run folder {result.out}")
    if result.stopped == "non-finite-loss":
        click.echo(f"Error: {result.message}", err=True)
        sys.exit(1)


def _tta_options(fn):
    """--scales / --flip, the same on eval and predict (segtrain.tta)."""
    fn = click.option("--flip/--no-flip", default=False, show_default=True,
                      help="Also predict on the horizontally flipped input (flipped back, then averaged).")(fn)
    return click.option("--scales", default="1", show_default=True,
                        help="Test-time scales, multiples of the input size, e.g. 0.75,1,1.25 (at most 8, "
                        "each > 0 and <= 4); the softmax probabilities of the passes are averaged.")(fn)


def _tta_note(tta: TTAConfig) -> str:
    return f" (TTA: {tta.label()})" if not tta.plain else ""


@main.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", required=True, type=click.Path(), help="Clean tree (folder with dataset.json).")
@click.option("--split", default="test", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Report folder.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--size", callback=_size, help="Input size HxW [default: the training size].")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--workers", type=int, default=None, help="[default: cores - 2, at least 1]")
@click.option("--panels", type=int, default=4, show_default=True, help="Images in the best / worst panels.")
@click.option("--amp/--no-amp", default=True, show_default=True)
@click.option("--miou-rule", type=click.Choice(MIOU_RULES), default="standard", show_default=True,
              help="standard: classes with an empty union are left out, a class predicted but absent "
              "scores 0 (mmsegmentation, torchmetrics, Cityscapes); gt-present: only classes in the ground "
              "truth (segtrain's old rule). metrics.json records the rule and both numbers.")
@click.option("--strict", is_flag=True, help="Exit 1 when a sample of the split was unreadable and left out.")
@_tta_options
def eval_cmd(checkpoint, data, split, out, batch_size, size, device, workers, panels, amp, miou_rule, strict,
             scales, flip):
    """Evaluate CHECKPOINT on a split: metrics.json, CSVs and figures in --out.

    An unreadable sample is reported, left out and listed in metrics.json (skipped_images)."""
    from segtrain.inference import run_eval

    tta = TTAConfig(_guard(parse_scales, scales), flip)
    cfg = EvalConfig(checkpoint=checkpoint, data=data, split=split, out=out, batch_size=batch_size,
                     size=size, device=device, panels=panels, amp=amp, miou_rule=miou_rule, tta=tta)
    if workers is not None:
        cfg.workers = workers
    m = _guard(run_eval, cfg, progress=sys.stderr.isatty())
    miou = "n/a" if m["miou"] is None else f"{m['miou']:.4f}"
    pa = "n/a" if m["pixel_accuracy"] is None else f"{m['pixel_accuracy']:.4f}"
    skipped = len(m["skipped_images"])
    left_out = f", {skipped} unreadable left out" if skipped else ""
    click.echo(f"{split}: {m['miou_rule']} mIoU {miou}{_tta_note(tta)} (labels: {m['label_mode']}), pixel accuracy {pa} over {m['num_images']} images "
               f"({m['classes_evaluated']} classes evaluated, {len(m['absent_classes'])} absent from "
               f"the ground truth{left_out}); report in {out}")
    if skipped and strict:
        sys.exit(1)


@main.command("predict")
@click.argument("checkpoint", type=click.Path())
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(), help="Folder for the masks.")
@click.option("--size", callback=_size, help="Input size HxW [default: the training size].")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 when any image was skipped.")
@click.option("--keep-exif-orientation", is_flag=True, help="Predict on the pixels as stored and write "
              "the masks in that orientation, ignoring a JPEG's EXIF rotation tag [default: the image is "
              "turned upright as viewers show it, and so are its masks].")
@click.option("--depth", "depth_dir", type=click.Path(), help="Folder with <stem>_depth.png (uint16 mm) for "
              "each image: required by, and only accepted by, checkpoints trained with --inputs rgbd/depth.")
@_tta_options
def predict_cmd(checkpoint, inputs, out, size, device, amp, strict, keep_exif_orientation, depth_dir, scales, flip):
    """Predict label and colour masks for image files or folders (at each image's size).

    JPEGs are turned by their EXIF orientation tag before prediction (the masks then overlay
    the image as a viewer shows it); --keep-exif-orientation keeps the stored pixel order."""
    from segtrain.inference import NoReadableInput, run_predict

    tta = TTAConfig(_guard(parse_scales, scales), flip)
    cfg = PredictConfig(checkpoint=checkpoint, inputs=list(inputs), out=out, size=size,
                        device=device, amp=amp, strict=strict,
                        keep_exif_orientation=keep_exif_orientation, depth=depth_dir, tta=tta)

    def predict():
        try:
            return run_predict(cfg, progress=sys.stderr.isatty())
        except NoReadableInput as e:  # each image's reason, then the one Error line (exit 2)
            for problem in e.problems:
                click.echo(f"problem: {problem} (skipped)", err=True)
            raise

    res = _guard(predict)
    for problem in res.problems:
        click.echo(f"problem: {problem} (skipped)", err=True)
    click.echo(f"{len(res.written) // 2} images predicted{_tta_note(tta)}, {len(res.problems)} skipped; "
               f"masks in {out}")
    if res.problems and strict:
        sys.exit(1)


@main.command("models")
@click.option("--num-classes", default=39, show_default=True, type=click.IntRange(min=1),
              help="Classes for the parameter counts.")
@click.option("-v", "--verbose", is_flag=True, help="Also list each model's options and their defaults.")
def models_cmd(num_classes, verbose):
    """List the registered models with parameter counts per part (encoder, decoder, head) and
    the pretrained encoder names each accepts (--pretrained NAME)."""
    import torch

    from segtrain.models import FUSIONS as FUSION_SPECS
    from segtrain.models import MODELS, count_parameters, create_model, fusion_models, model_options
    from segtrain.models.hub import accepted_names

    click.echo(f"{'model':<18}{'total':>13}{'encoder':>13}{'decoder':>13}{'head':>9}  description")
    for name, spec in MODELS.items():
        with torch.device("meta"):  # shapes only: counting needs no memory and no initialisation
            c = count_parameters(create_model(name, num_classes))
        click.echo(f"{name:<18}{c['total']:>13,}{c['encoder']:>13,}{c['decoder']:>13,}{c['head']:>9,}  "
                   f"{spec.description}")
        if verbose:
            import inspect

            params = inspect.signature(spec.builder).parameters
            opts = ", ".join(f"{k}={spec.defaults.get(k, params[k].default)}" for k in model_options(name))
            click.echo(f"{'':<18}options: {opts}")
        for opt, names in accepted_names(name).items():
            click.echo(f"{'':<18}--pretrained{f' (with --model-opt {opt})' if opt else ''}: {', '.join(names)}")
    click.echo(f"\n--inputs {'|'.join(INPUTS)} (depth: --depth-encoding {'|'.join(DEPTH_ENCODINGS)}); "
               "RGB-D fusion designs:")
    for fusion, spec in FUSION_SPECS.items():
        click.echo(f"  --fusion {fusion:<6} {spec.description}: {', '.join(fusion_models(fusion))}")


@main.command("bench")
@click.option("--data", required=True, type=click.Path(), help="Clean tree (its train split is read).")
@click.option("--model", default="unet_small", show_default=True,
              help="A model, a comma list, or all (each with its default options).")
@click.option("--model-opt", multiple=True, help="Model option KEY=VALUE (repeatable).")
@click.option("--size", callback=_size, help="Input size HxW [default: dataset.json image_size].")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--steps", default=100, show_default=True, help="Timed steps per mode.")
@click.option("--warmup", default=10, show_default=True, help="Untimed steps per mode.")
@click.option("--windows", default=5, show_default=True,
              help="Windows the timed steps are split into; each rate is the median window.")
@click.option("--augment", type=click.Choice(AUGMENTS), default="basic", show_default=True)
@click.option("--augment-on", type=click.Choice(AUGMENT_ON), default="loader", show_default=True,
              help="Where none/basic run, as for `run`.")
@click.option("--workers", type=int, default=None, help="[default: cores - 2, at least 1]")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True)
@click.option("--channels-last/--no-channels-last", default=True, show_default=True)
@click.option("--compile/--no-compile", "compile_model", default=False, show_default=True)
@click.option("--train-parts", default="all", show_default=True, help="Parts trained (the rest frozen).")
@click.option("--inputs", type=click.Choice(INPUTS), default="rgb", show_default=True,
              help="Network inputs (rgbd/depth read the depth files too).")
@click.option("--depth-encoding", type=click.Choice(DEPTH_ENCODINGS), default="metres", show_default=True)
@click.option("--fusion", type=click.Choice(FUSIONS), default="early", show_default=True)
@click.option("--json-out", type=click.Path(), help="Also write the result as JSON here (a list for "
              "several models).")
def bench_cmd(data, model, model_opt, size, batch_size, steps, warmup, windows, augment, augment_on, workers,
              device, amp, channels_last, compile_model, train_parts, inputs, depth_encoding, fusion, json_out):
    """Steady-state training images/s: real input pipeline vs synthetic on-device batches and
    their ratio, the input pipeline alone, GPU-busy fraction, TFLOP/s against a matrix
    product's peak, host CPU per step; parameters and training memory per model."""
    from cleantree.files import atomic_write_json
    from segtrain.bench import bench_models, markdown_table, run_benches

    if json_out:  # checked before minutes of benchmarking, not after
        _guard(check_out_file, json_out, "--json-out")
    _guard(check_augment_on, augment, augment_on)
    names = _guard(bench_models, model)
    if model_opt and len(names) > 1:
        raise CliError("--model-opt applies to one model; bench several models with their defaults")
    cfgs = []
    for name in names:
        cfg = BenchConfig(data=data, model=name, model_options=_model_opts(model_opt), size=size,
                          batch_size=batch_size, steps=steps, warmup=warmup, windows=windows, augment=augment,
                          augment_on=augment_on,
                          device=device, amp=amp, channels_last=channels_last, compile=compile_model,
                          train_parts=train_parts, inputs=inputs, depth_encoding=depth_encoding,
                          fusion=fusion)
        if workers is not None:
            cfg.workers = workers
        cfgs.append(cfg)
    results, runs = [], run_benches(cfgs, progress=sys.stderr.isatty())
    while True:
        result = _guard(next, runs, None)
        if result is None:
            break
        results.append(result)
        if json_out:  # after each model, so an interrupted `--model all` keeps what it measured
            atomic_write_json(json_out, results[0] if len(cfgs) == 1 else results, allow_nan=False)
    if len(results) == 1:
        click.echo(json.dumps(results[0], indent=2))
    for r in results:
        mem = f", GPU peak {r['peak_gpu_memory_gib']:.2f} GiB" if r["peak_gpu_memory_gib"] is not None else ""
        click.echo(f"{r['model']} {r['size'][0]}x{r['size'][1]} batch {r['batch_size']} on {r['device']} "
                   f"({r['precision']}): synthetic {r['synthetic_images_per_s']:.2f} img/s, real pipeline "
                   f"{r['real_images_per_s']:.2f} img/s, ratio {r['real_over_synthetic']:.3f}, loader alone "
                   f"{r['loader_images_per_s']:.2f} img/s; {r['train_flops_per_image'] / 1e9:.3g} GFLOP/image; "
                   f"{r['parameters'] / 1e6:.2f} M params ({r['trainable_parameters'] / 1e6:.2f} M trained), "
                   f"activations {r['activations_mib']:.0f} MiB{mem}")
    click.echo("\n" + markdown_table(results), nl=False)


@main.command("sweep")
@click.argument("models")
@click.option("--data", required=True, type=click.Path(), help="Clean tree (folder with dataset.json).")
@click.option("--out", required=True, type=click.Path(), help="Sweep folder: one run folder per grid point.")
@click.option("--config", "config_file", type=click.Path(), help="YAML with options shared by every run.")
@click.option("--lr", help="Comma list, e.g. 1e-2,1e-3,1e-4.")
@click.option("--train-parts", help="e.g. head,decoder,head,all (values end at head/all) or head|decoder,head|all.")
@click.option("--batch-size", help="Comma list.")
@click.option("--weight-decay", help="Comma list.")
@click.option("--optimizer", help="Comma list of " + ", ".join(OPTIMIZERS) + ".")
@click.option("--scheduler", help="Comma list of " + ", ".join(SCHEDULERS) + ".")
@click.option("--warmup-steps", help="Comma list: linear lr warm-up steps (0 = off).")
@click.option("--warmup-ratio", type=float, help="Warm-up start as a fraction of --lr (all runs).")
@click.option("--loss", help="Comma list of " + ", ".join(LOSS_NAMES) + ".")
@click.option("--augment", help="Comma list of " + ", ".join(AUGMENTS) + ".")
@click.option("--epochs", help="Comma list.")
@click.option("--seed", help="Comma list (repeat a setting over seeds).")
@click.option("--size", callback=_size, help="Resize every sample to HxW (all runs).")
@click.option("--crop", callback=_size, help="Train on random HxW crops (all runs).")
@click.option("--early-stop", type=int, help="Patience in epochs (all runs).")
@click.option("--max-train-batches", type=int, help="Cap batches per epoch (all runs).")
@click.option("--model-opt", multiple=True, help="Model option KEY=VALUE (all runs).")
@click.option("--pretrained", help="Encoder weights: a name from `segtrain models` or a file (all runs).")
@click.option("--init-from", type=click.Path(), help="Checkpoint to start every run from.")
@click.option("--device", type=click.Choice(DEVICES), help="[default: auto]")
@click.option("--workers", type=int, help="DataLoader workers [default: cores - 2, at least 1].")
@click.option("--dry-run", is_flag=True, help="Only list the runs.")
@click.option("--strict", is_flag=True, help="Exit 1 when any run failed.")
def sweep_cmd(models, data, out, config_file, model_opt, dry_run, strict, **flags):
    """Train a grid of runs one after another (MODELS: comma list) and write one comparison table
    (OUT/sweep.csv, OUT/sweep.md) of best val mIoU, its epoch, trainable parameters and time."""
    from segtrain.sweep import GRID_KEYS, SweepConfig, plan, run_sweep, split_values

    grid = {"model": _guard(split_values, "model", models)}
    base = _guard(load_config_file, config_file) if config_file else {}
    base = {k: v for k, v in base.items() if k != "out"}
    base["data"] = data
    for key, value in flags.items():
        if value is None:
            continue
        if key in GRID_KEYS:
            values = _guard(split_values, key, value)
            if len(values) > 1:
                grid[key] = values
            else:  # one value is a fixed option, not a column of the table
                base[key] = values[0]
        else:
            base[key] = value
    if model_opt:  # over the config file's options, key by key (as build_config merges for `run`)
        earlier = base.get("model_options")
        base["model_options"] = {**(earlier if isinstance(earlier, dict) else {}), **_model_opts(model_opt)}
    cfg = SweepConfig(out=out, base=base, grid=grid, strict=strict)
    runs = _guard(plan, cfg)
    if dry_run:
        for r in runs:
            click.echo(r.name)
        click.echo(f"{len(runs)} runs")
        return
    rows = _guard(run_sweep, cfg, progress=sys.stderr.isatty())
    failed = [r for r in rows if str(r.get("stopped", "")).startswith("error")
              or r.get("stopped") == "non-finite-loss"]
    best = max((r for r in rows if r.get("best_val_miou") is not None), key=lambda r: r["best_val_miou"],
               default=None)
    click.echo(Path(out, "sweep.md").read_text(encoding="utf-8"), nl=False)
    click.echo(f"{len(rows)} runs, {len(failed)} failed; best: "
               + (f"{best['run']} (val mIoU {best['best_val_miou']:.4f})" if best else "none")
               + f"; table in {Path(out) / 'sweep.csv'}")
    if failed and strict:
        sys.exit(1)


@main.group("dataset-json")
def dataset_json_group():
    """Write a dataset.json for a dataset in its own standard layout."""


@dataset_json_group.command("cityscapes")
@click.argument("root", type=click.Path())
@click.option("--force", is_flag=True, help="Replace an existing, different dataset.json.")
@click.option("--strict", is_flag=True, help="Exit 1 when problems were reported.")
def dataset_json_cityscapes(root, force, strict):
    """ROOT/dataset.json for a Cityscapes tree (leftImg8bit/ + gtFine/): the official 34 label ids,
    19 train classes, splits and image size."""
    from segtrain.cityscapes import write_cityscapes_json

    meta, problems = _guard(write_cityscapes_json, root, force)
    for p in problems[:20]:
        click.echo(f"problem: {p}", err=True)
    if len(problems) > 20:
        click.echo(f"problem: … and {len(problems) - 20} more", err=True)
    splits = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    size = "x".join(map(str, meta["image_size"])) if meta["image_size"] else "mixed sizes"
    click.echo(f"wrote {Path(root) / 'dataset.json'}: {meta['num_classes']} train classes, "
               f"{len(meta['classes'])} label ids; {splits}; {size}; {len(problems)} problems")
    if problems and strict:
        sys.exit(1)


if __name__ == "__main__":
    main()
