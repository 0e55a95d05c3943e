"""The `segtrain` command: a thin click shell over engine / inference / bench functions."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path

import click

from segtrain.config import (
    AUGMENTS,
    DEPTH_ENCODINGS,
    DEVICES,
    INPUTS,
    MIOU_RULES,
    RUN_OPTION,
    RUN_OPTIONS,
    BenchConfig,
    EvalConfig,
    PredictConfig,
    RunOption,
    TrainConfig,
    TTAConfig,
    build_config,
    check_augment_on,
    load_config_file,
    parse_scales,
    resume_layer,
)
from segtrain.sweep import GRID_KEYS
from segtrain.utils import SegtrainError, check_out_dir, check_out_file, parse_hw, quiet_opencv

log = logging.getLogger("segtrain")


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


def _option(opt: RunOption, grid: bool = False, dest: str = "", **extra):
    """The click option of a `run` option (segtrain.config.RUN_OPTIONS). With `grid` (`sweep`) a
    scalar option takes a comma list instead, split and checked by segtrain.sweep.split_values.
    `extra` goes to click.option: a command with a `default` of its own (`bench`) shows that one
    (show_default) instead of the `[default: …]` of run's help."""
    kind, dashed, dest = opt.kind, opt.flag, dest or opt.name
    text = opt.help + (opt.sweep_note if grid else "")
    if "default" in extra:
        text = re.sub(r" \[default: [^\]]*\]", "", text)
    extra = {"help": text, **extra}
    if kind is bool:
        return click.option(f"{dashed}/--no-{dashed[2:]}", dest, **{"default": None, **extra})
    if kind is dict:
        return click.option(dashed, dest, multiple=True, **extra)
    if kind is list:
        return click.option(dashed, dest, callback=_size, **extra)
    one = (click.Choice(opt.choices) if opt.choices else click.Path() if opt.path
           else {int: click.INT, float: click.FLOAT}.get(kind, click.STRING))
    if grid:
        metavar = ("[" + "|".join(opt.choices) + "]" if opt.choices else one.name.upper()) + ",..."
        return click.option(dashed, dest, metavar=metavar, **extra)
    return click.option(dashed, dest, type=one, **extra)


def _options(options, config):
    """Apply the click options of RUN_OPTIONS in their order, `--config` after `--out` (the
    order `--help` lists them)."""
    at = [o.name for o in RUN_OPTIONS].index("out") + 1
    decorators = [*options[:at], config, *options[at:]]

    def apply(fn):
        for decorate in reversed(decorators):
            fn = decorate(fn)
        return fn
    return apply


@main.command("run")
@click.argument("model")
@_options([_option(o) for o in RUN_OPTIONS], click.option("--config", "config_file", type=click.Path(),
                                                          help="YAML with defaults; flags override it."))
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt, exactly.")
def run_cmd(model, out, config_file, resume, model_options, **flags):
    """Train MODEL (see `segtrain models`) on --data, writing checkpoints and metrics to --out.

    Under `torchrun --nproc_per_node=N -m segtrain run …` it trains with DistributedDataParallel
    (--batch-size is the global batch); only rank 0 writes."""
    from segtrain.engine import train

    cli = {k: v for k, v in flags.items() if v is not None}
    cli["model"] = model
    if model_options:
        cli["model_options"] = _model_opts(model_options)
    layers = []
    file_layer = _guard(load_config_file, config_file) if config_file else {}
    out = out or file_layer.get("out") or f"runs/{model}"
    cli["out"] = out
    _guard(check_out_dir, out)
    if resume:
        saved = Path(out) / "config.yaml"
        if not saved.is_file():
            raise CliError(f"{saved}: not found; nothing to resume in {out}")
        layers.append(resume_layer(_guard(load_config_file, saved), cli.get("loss") or file_layer.get("loss")))
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
    return tta.note()


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
    from segtrain.report import format_eval_line

    tta = TTAConfig(_guard(parse_scales, scales), flip)
    cfg = EvalConfig(checkpoint=checkpoint, data=data, split=split, out=out, batch_size=batch_size,
                     size=size, device=device, panels=panels, amp=amp, miou_rule=miou_rule, tta=tta)
    if workers is not None:
        cfg.workers = workers
    m = _guard(run_eval, cfg, progress=sys.stderr.isatty())
    click.echo(format_eval_line(m, out))
    if m["skipped_images"] and strict:
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
    the image as a viewer shows it); --keep-exif-orientation keeps the stored pixel order.
    A re-run into the same --out resumes: predict.json there records the checkpoint and options
    that made its masks and each image's size and mtime; images with both masks, unchanged since,
    are skipped, a changed record predicts all again."""
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
    already = f", {res.already} already predicted" if res.already else ""
    click.echo(f"{len(res.written) // 2} images predicted{_tta_note(tta)}{already}, {len(res.problems)} skipped; "
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
@_option(RUN_OPTION["augment_on"], default="loader", show_default=True)
@click.option("--workers", type=int, default=None, help="[default: cores - 2, at least 1]")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True)
@click.option("--channels-last/--no-channels-last", default=True, show_default=True)
@_option(RUN_OPTION["compile"], dest="compile_model", default=False, show_default=True)
@_option(RUN_OPTION["train_parts"], default="all", show_default=True)
@_option(RUN_OPTION["inputs"], default="rgb", show_default=True)
@_option(RUN_OPTION["depth_encoding"], default="metres", show_default=True)
@_option(RUN_OPTION["fusion"], default="early", show_default=True)
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


# `run` options `sweep` does not take, and why (a test checks that `sweep` offers every other one).
NOT_IN_SWEEP = {
    "resume": "re-running a sweep resumes its unfinished runs and reuses its finished ones by itself",
}


def _sweep_option(opt: RunOption):
    if opt.name == "out":
        return click.option("--out", required=True, type=click.Path(),
                            help="Sweep folder: one run folder per grid point.")
    return _option(opt, grid=opt.name in GRID_KEYS, required=opt.name == "data")


@main.command("sweep")
@click.argument("models")
@_options([_sweep_option(o) for o in RUN_OPTIONS], click.option("--config", "config_file", type=click.Path(),
                                                                help="YAML with options shared by every run."))
@click.option("--dry-run", is_flag=True, help="Only list the runs.")
@click.option("--strict", is_flag=True, help="Exit 1 when any run failed.")
def sweep_cmd(models, out, config_file, model_options, dry_run, strict, **flags):
    """Train a grid of runs one after another (MODELS: comma list) and write one comparison table
    (OUT/sweep.csv, OUT/sweep.md) of best val mIoU, its epoch, trainable parameters and time.

    Takes every `run` option but --resume (running a sweep again resumes it). An option shown as
    TYPE,... takes a comma list: several values span the grid, one run per combination (the first
    option varies slowest); one value applies to every run.

    \b
    Example: segtrain sweep unet_small --data clean/ --out sweeps/rgbd \\
                 --inputs rgb,rgbd --seed 0,1 --epochs 30"""
    from segtrain.sweep import SweepConfig, plan, run_sweep, shown, split_values

    grid = {"model": _guard(split_values, "model", models)}
    base = _guard(load_config_file, config_file) if config_file else {}
    base = {k: v for k, v in base.items() if k != "out"}
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
    if model_options:  # over the config file's options, key by key (as build_config merges for `run`)
        earlier = base.get("model_options")
        base["model_options"] = {**(earlier if isinstance(earlier, dict) else {}), **_model_opts(model_options)}
    grid = {k: grid[k] for k in GRID_KEYS if k in grid}  # sweep.yaml lists them as they nest
    cfg = SweepConfig(out=out, base=base, grid=grid, strict=strict)
    if dry_run:
        grid_plan = _guard(plan, cfg)
        for r in grid_plan.runs:
            click.echo(r.name)
        for lo in grid_plan.left_out:
            click.echo(f"left out: {shown(lo.combo)}: {lo.reason}")
        left = f", {len(grid_plan.left_out)} left out" if grid_plan.left_out else ""
        click.echo(f"{len(grid_plan.runs)} runs{left}")
        return
    rows = _guard(run_sweep, cfg, progress=sys.stderr.isatty())  # plans (validates) the grid first
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
