"""Evaluation: feature extractors -> streaming statistics (float64) -> metric functions (DESIGN.md sec. 3, 5).

    from gankit.metrics import evaluate
    result = evaluate("fid,kid,pr", sampler, ref="mnist", n_gen=10_000)

Registered metrics (``metric_names()``): fid, kid, is, pr (precision/recall), dc (density/coverage),
modes (classifier mode counts, stacked MNIST), toy (2-D mixtures), class_consistency / intra_fid /
truncation_curve (conditional models, sampled class by class: conditional.py), and psnr, ssim, l1 for translators
(``evaluate_translation``, which also runs the image metrics on translated held-out images). Registered
extractors: inception (the standard FID Inception-v3 via torch-fidelity) and classifier:PATH (gankit's own small
CNN). The protocol that makes numbers comparable with papers is in docs/metrics.md.
"""
from .base import (EvalOptions, Extractor, FeatureStats, MetricSpec, Shard, exact_float32, extractors, make_extractor,
                   metric_names, metrics)
# Importing the modules registers their metrics and extractors.
from . import classifier, conditional, fid, inception, inception_score, kid, prdc, restoration, text, toy, translation  # noqa: F401
from . import audio  # noqa: E402,F401  the audio classifier input; sound metrics (metrics/audio.py)
from .classifier import ClassifierExtractor, load_classifier, mode_metrics, save_classifier, train_classifier
from .evaluate import compare_cards, evaluate, format_table, load_card, prepare_evaluation, save_card
from .fid import (fid_bootstrap, fid_from_stats, frechet_distance, trace_sqrt_product,
                  trace_sqrt_product_factored)
from .inception import InceptionExtractor, find_inception_weights, write_random_inception_weights
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .paired import paired_metrics
from .prdc import knn_radii, prdc as precision_recall_density_coverage
from .reference import compute_reference_file, load_stats, save_stats
from .toy import toy_metrics
from .translation import evaluate_translation

__all__ = [
    "ClassifierExtractor", "EvalOptions", "Extractor", "FeatureStats", "InceptionExtractor", "MetricSpec", "Shard",
    "compare_cards", "compute_reference_file", "evaluate", "evaluate_translation", "extractors", "fid_bootstrap",
    "fid_from_stats", "find_inception_weights",
    "format_table", "frechet_distance", "inception_score", "kernel_inception_distance", "knn_radii",
    "load_card", "load_classifier", "load_stats", "make_extractor", "metric_names", "metrics", "mode_metrics",
    "paired_metrics", "precision_recall_density_coverage", "prepare_evaluation", "save_card", "save_classifier", "save_stats",
    "toy_metrics", "trace_sqrt_product", "trace_sqrt_product_factored", "train_classifier",
    "write_random_inception_weights",
]
