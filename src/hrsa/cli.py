"""The ``hrsa`` command: library entry points for use outside Snakemake.

hrsa validate-config config/paper.yaml
hrsa build-tiny results/models/tiny-base --recipe base
hrsa extract --model results/models/tiny-base --texts cot.jsonl --store out/
hrsa verify-store results/activations/tiny-base/backbone/cot
hrsa check-pair STORE_A STORE_B
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from .errors import HRSAError


def _validate(args) -> None:
    from .config import validate_config

    validate_config(yaml.safe_load(open(args.config)))
    print(f"{args.config}: valid")


def _build_tiny(args) -> None:
    from .tiny import build_tiny

    rec = build_tiny(
        args.out,
        recipe=args.recipe,
        init=args.init,
        seed=args.seed,
        arch=args.arch,
        steps=args.steps,
        task=args.task,
    )
    print(json.dumps(rec, indent=1))


def _extract(args) -> None:
    from .activations import extract

    extract(
        model=args.model,
        texts=args.texts,
        store=args.store,
        model_key=args.model_key or "",
        dataset_key=args.dataset_key or "",
        attention=args.attention,
        device=args.device,
        batch_size=args.batch_size,
        max_length=args.max_length,
        max_tokens=args.max_tokens,
        max_sequences=args.max_sequences,
        storage_dtype=args.storage_dtype,
        seed=args.seed,
    )


def _verify(args) -> int:
    """Every problem of the store, one line each (missing, truncated, malformed or corrupted
    files, an absent or unreadable manifest), and exit status 1; or one ``ok`` line."""
    from .store import ActivationStore, rebuild_hint, store_problems

    try:
        problems = store_problems(args.store)
    except OSError as exc:  # e.g. the store directory itself is unreadable
        problems = [f"{exc.filename or args.store}: unreadable ({exc.strerror or exc})"]
    if problems:
        for problem in problems:
            print(f"hrsa: error: {problem}", file=sys.stderr)
        print(f"hrsa: {rebuild_hint(args.store)}", file=sys.stderr)
        return 1
    store = ActivationStore(args.store, verify_reads=False)
    print(
        f"{args.store}: ok ({store.n_rows} tokens, {store.n_hidden_states} hidden states, "
        f"D={store.dim}, dtype {store.manifest.get('dtype', '?')})"
    )
    return 0


def _check_pair(args) -> None:
    from .store import pair_check

    pair_check(args.a, args.b)
    print("aligned; every file of both stores matches its manifest")


def _rehearsal_config(args) -> None:
    from .rehearsal import write_rehearsal_config

    settings = {"seeds": args.seeds} if args.seeds is not None else {}
    write_rehearsal_config(args.paper, args.out, **settings)
    print(f"wrote {args.out}")


def _rehearsal_mirror(args) -> None:
    import yaml

    from .config import validate_config
    from .rehearsal import write_mirror

    cfg = validate_config(yaml.safe_load(open(args.config)))
    print(f"wrote {write_mirror(cfg, args.root)}")


def _rehearsal_check(args) -> None:
    import json

    import yaml

    from .rehearsal import check_run

    print(json.dumps(check_run(yaml.safe_load(open(args.config)), args.root), indent=1))


def main(argv: list[str] | None = None) -> int:
    from .config import schema_default

    ap = argparse.ArgumentParser(
        prog="hrsa", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate-config", help="validate a config file against the schema")
    p.add_argument("config")
    p.set_defaults(func=_validate)
    p = sub.add_parser("build-tiny", help="build a tiny offline model")
    p.add_argument("out")
    p.add_argument("--recipe", required=True, choices=["base", "rlvr", "task_sft", "reason", "sft"])
    p.add_argument("--task", choices=["max3"], help="base: also pre-train on this task")
    p.add_argument("--init")
    p.add_argument("--seed", type=int, default=schema_default("models.<key>.build.seed"))
    p.add_argument(
        "--arch", default=schema_default("models.<key>.build.arch"), choices=["qwen2", "qwen3"]
    )
    p.add_argument("--steps", type=int)
    p.set_defaults(func=_build_tiny)
    p = sub.add_parser("extract", help="extract an activation store")
    p.add_argument("--model", required=True)
    p.add_argument("--texts", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--model-key")
    p.add_argument("--dataset-key")
    # defaults: the config schema's activations.<key> (and the top-level device)
    p.add_argument(
        "--attention",
        default=schema_default("activations.attention"),
        choices=["bidirectional", "causal"],
    )
    p.add_argument("--device", default=schema_default("device"))
    p.add_argument("--batch-size", type=int, default=schema_default("activations.batch_size"))
    p.add_argument("--max-length", type=int, default=schema_default("activations.max_length"))
    p.add_argument("--max-tokens", type=int, default=schema_default("activations.max_tokens"))
    p.add_argument("--max-sequences", type=int, default=schema_default("activations.max_sequences"))
    p.add_argument(
        "--storage-dtype",
        default=schema_default("activations.storage_dtype"),
        choices=["float16", "float32"],
    )
    p.add_argument("--seed", type=int, default=schema_default("activations.seed"))
    p.set_defaults(func=_extract)
    p = sub.add_parser("verify-store", help="check an activation store against its manifest")
    p.add_argument("store")
    p.set_defaults(func=_verify)
    p = sub.add_parser("check-pair", help="check that two stores hold the same tokens")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(func=_check_pair)
    p = sub.add_parser(
        "rehearsal-config", help="derive the CPU rehearsal of the paper config (hrsa.rehearsal)"
    )
    p.add_argument("paper", help="the paper config, e.g. config/paper.yaml")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--seeds", type=int, help="keep the first N seeds (default: all)")
    p.set_defaults(func=_rehearsal_config)
    p = sub.add_parser(
        "rehearsal-mirror", help="write the real-schema local data a config's data_mirror names"
    )
    p.add_argument("config")
    p.add_argument("--root", default=".", help="the workflow's working directory")
    p.set_defaults(func=_rehearsal_mirror)
    p = sub.add_parser("rehearsal-check", help="assert what a finished rehearsal must show")
    p.add_argument("config")
    p.add_argument("--root", default=".", help="the workflow's working directory")
    p.set_defaults(func=_rehearsal_check)
    args = ap.parse_args(argv)
    try:
        status = args.func(args)
    except HRSAError as exc:
        print(f"hrsa: error: {exc}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
