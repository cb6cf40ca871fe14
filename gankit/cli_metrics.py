"""Command-line front of the metrics: ref, fid, eval, compare, classifier train.

The lead attaches these to the main group (``for c in COMMANDS: cli.add_command(c)``). User mistakes raise
``GankitError`` subclasses, which the main CLI turns into a message and exit code 2.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch


def _data_options(resolution: int, channels: int, split: str | None, root: str | None, download: bool
                  ) -> dict[str, Any]:
    opts: dict[str, Any] = {"resolution": resolution, "channels": channels}
    if split:
        opts["split"] = split
    if root:
        opts["root"] = root
    if download:
        opts["download"] = True
    return opts


def _extractor_options(device: str, batch_size: int, inception_weights: str | None, no_verify: bool,
                       no_download: bool) -> dict[str, Any]:
    return {"device": device, "batch_size": batch_size, "inception_weights": inception_weights,
            "verify_weights": False if no_verify else None, "download": not no_download}


def _common_extractor_flags(f):
    for opt in reversed([
        click.option("--extractor", default="auto", show_default=True,
                     help="inception (standard FID features) or classifier:PATH (gankit's own classifier)."),
        click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
                     help="weights-inception-2015-12-05-6726825d.pth (else $GANKIT_INCEPTION_WEIGHTS, else the "
                          "torch hub cache, else download)."),
        click.option("--no-verify", is_flag=True, help="Accept Inception weights whose SHA-256 does not match "
                                                       "(numbers are then marked not comparable)."),
        click.option("--no-download", is_flag=True, help="Never download the Inception weights."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--batch-size", type=int, default=64, show_default=True),
    ]):
        f = opt(f)
    return f


# ---- gankit ref ----------------------------------------------------------------------------------------------

@click.command("ref")
@click.option("--data", "data_spec", required=True, help="Builtin dataset name or path (folder, .npz).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Statistics file to write (.npz).")
@click.option("--n", type=int, default=None, help="Images to use (default all; fewer = seeded random subset).")
@click.option("--features", is_flag=True, help="Also store every feature (KID, pr and dc need them).")
@click.option("--resolution", type=int, default=0, help="Load the data at this side (0 = its own).")
@click.option("--channels", type=int, default=0, help="Force 1 or 3 channels (0 = the data's own).")
@click.option("--split", default=None, help="Split of a builtin dataset (train / test).")
@click.option("--root", default=None, help="Where builtin datasets live.")
@click.option("--download", is_flag=True, help="Let builtin datasets download their files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random subset.")
@_common_extractor_flags
def ref_cmd(data_spec, out, n, features, resolution, channels, split, root, download, seed, extractor,
            inception_weights, no_verify, no_download, device, batch_size):
    """Write reference statistics (pytorch-fid's mu/sigma npz layout + protocol) of a dataset."""
    from .metrics import make_extractor
    from .metrics.reference import compute_reference_file
    ext = make_extractor("inception" if extractor == "auto" else extractor,
                         **_extractor_options(device, batch_size, inception_weights, no_verify, no_download))
    path = compute_reference_file(data_spec, out, ext, n=n, seed=seed, batch_size=batch_size,
                                  data_options=_data_options(resolution, channels, split, root, download),
                                  keep_features=features, progress=True)
    click.echo(f"wrote {path}")


# ---- gankit fid ----------------------------------------------------------------------------------------------

@click.command("fid")
@click.argument("stats_a", type=click.Path(dir_okay=False))
@click.argument("stats_b", type=click.Path(dir_okay=False))
def fid_cmd(stats_a, stats_b):
    """FID between two statistics files (gankit ref or pytorch-fid npz)."""
    from .metrics.fid import frechet_distance
    from .metrics.reference import load_stats
    sa, pa = load_stats(stats_a)
    sb, pb = load_stats(stats_b)
    ea, eb = pa.get("extractor"), pb.get("extractor")
    if ea is not None and eb is not None and ea != eb:
        raise ConfigError(f"{stats_a} and {stats_b} were made with different extractors ({ea} vs {eb}); their "
                          f"FID is meaningless.")
    click.echo(f"{frechet_distance(sa.mean(), sa.cov(), sb.mean(), sb.cov()):.6f}")


# ---- gankit eval ---------------------------------------------------------------------------------------------

@click.command("eval")
@click.option("--ckpt", type=click.Path(exists=True), default=None,
              help="Checkpoint to evaluate, or a run directory (its latest.pt).")
@click.option("--images", type=click.Path(file_okay=False), default=None, help="Folder of generated images.")
@click.option("--ref", "ref", default=None,
              help="Reference: data spec, or a stats .npz from `gankit ref`. For a translation checkpoint: the "
                   "test data (default: the data it trained on, --split test).")
@click.option("--ref-b", default=None, help="Translation checkpoints: second folder of two-folder test data.")
@click.option("--metrics", "metric_list", default=None,
              help="Comma-separated: fid,kid,is,pr,dc,modes (name@extractor picks another extractor); "
                   "class_consistency,intra_fid,truncation_curve for conditional models; psnr,ssim,l1 "
                   "for translation checkpoints. Default: fid; for translators psnr,ssim,l1 on paired data, "
                   "fid,kid on unpaired data.")
@click.option("--n", type=int, default=None, help="Generated images (default 10000 from --ckpt, all --images; "
                                                  "translators: test inputs, default all).")
@click.option("--n-ref", type=int, default=None, help="Reference images (default all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the generator batches.")
@click.option("--bootstrap", type=int, default=0, help="Bootstrap resamples for a FID confidence interval.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the evaluation card (JSON).")
@click.option("--no-cache", is_flag=True, help="Recompute reference statistics instead of using the cache.")
@click.option("--split", default=None, help="Split of a builtin reference dataset (translators: default test).")
@click.option("--root", default=None, help="Where builtin datasets live.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default=None,
              help="Translation checkpoints: the dataset direction to evaluate (default: the trained one).")
@click.option("--class-n", type=int, default=None,
              help="class_consistency / intra_fid: samples per class (default 1000).")
@click.option("--truncations", default=None,
              help="truncation_curve: comma-separated --truncation settings of the model, e.g. 2,1,0.5.")
@_common_extractor_flags
def eval_cmd(ckpt, images, ref, ref_b, metric_list, n, n_ref, seed, bootstrap, out, no_cache, split, root, direction,
             class_n, truncations, extractor, inception_weights, no_verify, no_download, device, batch_size):
    """Evaluate generated images (a checkpoint's sampler or a folder) against a reference, or a translation
    checkpoint (pix2pix, CycleGAN) on held-out data."""
    from .metrics import format_table, save_card
    from .metrics.base import resolve_device, sha256_file
    from .samplers import EvalRequest
    if (ckpt is None) == (images is None):
        raise click.UsageError("Give exactly one of --ckpt CKPT or --images DIR.")
    dev = resolve_device(device)
    if ckpt and Path(ckpt).is_dir():
        ckpt = str(Path(ckpt) / "latest.pt")
    request = EvalRequest(metrics=metric_list, ref=ref, ref_b=ref_b, n=n, n_ref=n_ref, seed=seed, split=split,
                          root=root, direction=direction, extractor=extractor, batch_size=batch_size, device=dev,
                          inception_weights=inception_weights, verify_weights=False if no_verify else None,
                          download=not no_download, cache=not no_cache, bootstrap=bootstrap, progress=True)
    if class_n is not None:
        request.options["class_n"] = class_n
    if truncations:
        try:
            request.options["truncations"] = tuple(float(t) for t in truncations.split(",") if t.strip())
        except ValueError:
            raise click.UsageError(f"--truncations takes comma-separated numbers, got {truncations!r}.") from None
    if ckpt:
        # The checkpoint's own sampler evaluates itself (noise: samples vs --ref; translator: held-out data).
        from .loading import load_recipe
        recipe, cfg, _, nets = load_recipe(ckpt, dev)
        sampler = recipe.samplers(nets)["default"]
        request.data = cfg.data          # without --ref: the run's own data (noise) / its test split (translator)
        result = sampler.evaluate(request)
        result.update(getattr(recipe, "run_summary", None) or {})  # the run's reported facts, e.g. the spent privacy epsilon
    else:
        if direction or ref_b:
            raise click.UsageError("--direction and --ref-b apply to translation (pix2pix / CycleGAN) checkpoints.")
        from .metrics import evaluate
        result = evaluate(metric_list or "fid", images, ref, n, extractor=extractor, n_ref=n_ref, seed=seed,
                          batch_size=batch_size, device=dev, inception_weights=inception_weights,
                          verify_weights=False if no_verify else None, download=not no_download,
                          cache=not no_cache, data_options={k: v for k, v in (("split", split), ("root", root)) if v},
                          progress=True, fid_bootstrap=bootstrap)
    if ckpt:
        result["protocol"]["generated"].update(checkpoint=str(Path(ckpt).resolve()),
                                               checkpoint_sha256=sha256_file(ckpt))
    click.echo(format_table(result))
    if result.get("note"):
        click.echo(result["note"])
    if out:
        click.echo(f"wrote {save_card(result, out)}")


# ---- gankit compare ------------------------------------------------------------------------------------------

@click.command("compare")
@click.argument("card_a", type=click.Path(dir_okay=False))
@click.argument("card_b", type=click.Path(dir_okay=False))
def compare_cmd(card_a, card_b):
    """Put two evaluation cards side by side; numbers whose protocols differ are flagged NOT comparable."""
    from .metrics import compare_cards, load_card
    rows = compare_cards(load_card(card_a), load_card(card_b))
    click.echo(f"{'metric':<18} {'A':>14} {'B':>14}  comparable")
    for r in rows:
        fa = "-" if r["a"] is None else f"{r['a']:.6g}"
        fb = "-" if r["b"] is None else f"{r['b']:.6g}"
        click.echo(f"{r['name']:<18} {fa:>14} {fb:>14}  {'yes' if r['comparable'] else 'NO'}")
    flagged = [r for r in rows if not r["comparable"]]
    for r in flagged:
        click.echo(f"  {r['name']}: " + "; ".join(r["differences"]))


# ---- gankit classifier train ---------------------------------------------------------------------------------

@click.group("classifier")
def classifier_group():
    """gankit's own domain classifier (offline features and mode counts)."""


def _labelled_tensors(spec: str, options: dict[str, Any]) -> tuple["torch.Tensor", "torch.Tensor", Any, dict]:
    """Classifier pictures (float [-1, 1]) and labels of a data spec, all in memory, with the parameters of the
    data kind's classifier input (``metrics.classifier.classifier_inputs``: images as they are, sound as log-mel
    pictures...)."""
    import torch
    from .config import DataConfig
    from .data import load_dataset
    from .metrics.classifier import classifier_inputs
    ds = load_dataset(DataConfig(spec=spec, labels=True, **options), kinds=tuple(classifier_inputs.names()))
    frontend = classifier_inputs.get(ds.info.kind)
    params = {"kind": ds.info.kind, **frontend.params(ds.info)}
    tensors = getattr(ds, "tensors", None)
    if tensors is not None and "label" in tensors:
        return frontend.to_images(tensors[frontend.key], params), tensors["label"], ds.info, params
    items = [ds[i] for i in range(len(ds))]
    if not items or "label" not in items[0]:
        raise DataError(f"{spec!r} has no labels: the classifier trains on labelled data (class subfolders "
                        f"or a builtin with labels).")
    data = torch.stack([it[frontend.key] for it in items])
    return frontend.to_images(data, params), torch.stack([it["label"] for it in items]), ds.info, params


@classifier_group.command("train")
@click.option("--data", "data_spec", required=True, help="Labelled training data (builtin name or path).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Classifier file to write (.pt).")
@click.option("--test-data", default=None, help="Labelled test data (default: the test split of a builtin, "
                                                "else 10% of the training data held out).")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=4e-3, show_default=True)
@click.option("--width", type=int, default=32, show_default=True)
@click.option("--resolution", type=int, default=0, help="Train at this side (0 = the data's own).")
@click.option("--root", default=None, help="Where builtin datasets live.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the data kind (data.options), e.g. clip_samples=4096 for sound (repeatable).")
def classifier_train_cmd(data_spec, out, test_data, epochs, batch_size, lr, width, resolution, root, seed, device,
                         data_options):
    """Train the small CNN classifier (on images, or on sound as log-mel pictures) and save it as a data-only
    checkpoint."""
    import torch
    import yaml

    from .metrics.classifier import save_classifier, train_classifier
    kind_options: dict[str, Any] = {}
    for item in data_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--data-option {item!r}: use KEY=VALUE, e.g. clip_samples=4096.")
        kind_options[key.strip()] = yaml.safe_load(value)
    options: dict[str, Any] = {"resolution": resolution, **({"root": root} if root else {}),
                               **({"options": kind_options} if kind_options else {})}
    images, labels, info, input_params = _labelled_tensors(data_spec, {**options, "split": "train"})
    held_out = "test split"
    try:
        test_images, test_labels, _, _ = _labelled_tensors(test_data or data_spec, {**options, "split": "test"})
        if test_data is None and len(test_images) == len(images) and torch.equal(test_labels, labels):
            raise DataError("no separate test split")
    except DataError:
        if test_data is not None:
            raise
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(images), generator=gen)
        cut = len(images) // 10
        test_images, test_labels = images[perm[:cut]], labels[perm[:cut]]
        images, labels = images[perm[cut:]], labels[perm[cut:]]
        held_out = "10% of the training data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model, report = train_classifier(images, labels, test_images=test_images, test_labels=test_labels,
                                         num_classes=info.num_classes or None, epochs=epochs,
                                         batch_size=batch_size, lr=lr, width=width, seed=seed, device=device,
                                         log=click.echo)
    report["test_set"] = held_out
    path = save_classifier(out, model, report, class_names=list(info.class_names),
                           data={"spec": data_spec, "resolution": info.resolution, "channels": info.channels,
                                 "input": input_params})
    click.echo(json.dumps({"out": str(path), **{k: report[k] for k in ("test_accuracy", "train_seconds")}}))


COMMANDS = [ref_cmd, fid_cmd, eval_cmd, compare_cmd, classifier_group]
