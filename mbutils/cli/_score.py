"""``mbutils score MODEL --dataset FILE --out DIR [--weights trained|random] [...]``: score one model."""
from __future__ import annotations

import argparse

from ..constants import DEFAULT_METRICS, METRICS


def _alpha(value: str):
    """``--alpha``: a positive number, or ``auto``."""
    if value == "auto":
        return value
    try:
        alpha = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a positive number nor 'auto'") from None
    if not alpha > 0 or alpha == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: the penalty must be a finite positive number (or 'auto')")
    return alpha


def _run(args) -> int:
    from ..models import default_weights
    from ..scoring.pipeline import score_model

    weights = args.weights if args.weights is not None else default_weights(args.model)
    tables = score_model(
        args.model, args.dataset, args.out, weights=weights, metrics=tuple(args.metrics),
        n_components=args.n_components, alpha=args.alpha, threshold=args.threshold, mapping=args.mapping,
        seed=args.seed, cache=not args.no_cache, batch_size=args.batch_size, cka_estimator=args.cka_estimator,
        **({} if args.n_boot is None else {"n_boot": args.n_boot}),
        **({} if args.reliability_cutoffs is None else {"reliability_cutoffs": tuple(args.reliability_cutoffs)}),
    )
    summary = tables["summary"]
    if not summary.empty:
        cols = ["metric", "area", "max_score", "best_layer", "best_layer_depth", "unbiased_score", "overall_score"]
        print(summary[[c for c in cols if c in summary.columns]].to_string(index=False, float_format="%.3f"))
    print(f"wrote {args.out}/{{scores,scores_groups,neuron_scores,summary}}.parquet and provenance.json")
    return 0


def add_parser(subparsers, parents) -> None:
    """Register ``mbutils score``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options.
    """
    p = subparsers.add_parser(
        "score", help="score one model on a dataset (SRP-Ridge, RSA, CKA)", parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score one model against a dataset: neuron selection, one streamed pass over the\n"
                    "118 scenes, SRP-Ridge and RSA per layer and area; writes tidy Parquet tables.",
        epilog="examples:\n"
               "  mbutils score resnet18 --weights random --dataset data/synthetic.nc --out results/resnet18\n"
               "  mbutils score efficientnet_lite0 --dataset data/synthetic.nc --out results/lite0 --metrics rsa\n"
               "  mbutils score resnet18 --weights random --dataset data/synthetic.nc --out results/r18 "
               "--metrics srp_ridge rsa cka --alpha auto")
    p.add_argument("model", help="registry name (see `mbutils models`)")
    p.add_argument("--dataset", required=True, help="dataset file (NetCDF, schema in docs/dataset.md)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--weights", default=None, choices=["trained", "random"],
                   help="model variant (default: trained where the model has trained weights on this "
                        "machine, else its first available variant; baselines: random)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=list(METRICS),
                   help="metrics to score (default: srp_ridge rsa; cka: linear CKA of layer and area Grams)")
    p.add_argument("--n-components", type=int, default=4096, help="random projection size (default 4096)")
    p.add_argument("--alpha", type=_alpha, default=1.0,
                   help="ridge penalty (default 1), or 'auto': per neuron by generalized cross-validation over "
                        "logspace(-3, 5, 17) times each layer's mean Gram eigenvalue")
    p.add_argument("--cka-estimator", default="biased", choices=["biased", "unbiased"],
                   help="HSIC estimator of the cka metric (default biased)")
    p.add_argument("--threshold", type=float, default=0.8, help="split-half reliability threshold (default 0.8)")
    p.add_argument("--mapping", default="srp", choices=["srp", "exact", "pca"],
                   help="srp: the paper's projection; exact: ridge on all features; pca")
    p.add_argument("--seed", type=int, default=0, help="projection seed")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--n-boot", type=int, default=None,
                   help="bootstrap draws over stimuli and neurons (default: score_model's, 200; 0: none)")
    p.add_argument("--reliability-cutoffs", type=float, nargs="*", default=None, metavar="R",
                   help="reliability cutoffs of scores_reliability.parquet (default 0.5 0.55 ... 0.95; given "
                        "with no value: none, no extra neurons scored)")
    p.set_defaults(func=_run)
