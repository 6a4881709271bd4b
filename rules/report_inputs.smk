# Settings and input functions of the report rules (rules/report.smk includes this file).
#
# Uses from rules/common.smk: PAIRS, HRSA_DATASETS, PROBE_DATASETS_LABELLED, STAGES_MAIN,
# dynamics_steps(pair) and config. Settings: config["report"] (documented in config/README.md):
#   main_dataset       HRSA dataset of Figure 3 and Tables 2-4 (default: HRSA_DATASETS[0])
#   probe_dataset      labelled dataset of Figures 4, 12, 13 and the readout verdict (default:
#                      config["hrsa"]["probe"]["dataset"] if labelled, else the first labelled
#                      dataset; none -> no probe figures)
#   figure3_pairs      pairs of Figures 3 and 4 (default: the first SFT and the first RLVR pair)
#   dataset_labels     display names of datasets, e.g. {cot: CoT} (default: built-in names)
#   include_table1     build Table 1 from results/mteb/table1.csv
#                      (default: config["evaluation"]["enabled"] and training enabled)
#   verdicts           thresholds of Table 2 (keys and defaults: hrsa.report.verdicts)
# Table 7 (training data per set) is built when training is enabled, from the reports of the
# contrastive_data and (if config["training"]["mining"]["enabled"], default true) mine_negatives
# rules.
# Embedding-model outputs (the "emb" stage: Figures 7, 9, 11, 13, Table 13, the lower rows of
# Figures 3-4) exist for pairs whose two members have embedding models: trained
# (config["training"]["enabled"] and the pair's `train`, default true) or published
# (config["models"][m]["embedding_source"]); Figure 5 for pairs with both members trained, on
# config["training"]["dynamics_datasets"] (default: the first HRSA dataset), from the summaries
# of backbone (= step 0) and step{N}, N > 0.

REPORT = "results/report"
REPORT_LAYER_GRIDS = {
    "6": ("dimension_wise_correlation", "backbone"),
    "7": ("dimension_wise_correlation", "emb"),
    "8": ("linear_cka", "backbone"),
    "9": ("linear_cka", "emb"),
    "10": ("knn_overlap", "backbone"),
    "11": ("knn_overlap", "emb"),
}
REPORT_PROBE_GRIDS = {"12": "backbone", "13": "emb"}
REPORT_H_INV_TABLES = {"12": "backbone", "13": "emb"}


def report_setting(key, default=None):
    return (config.get("report") or {}).get(key, default)


def report_training_enabled():
    return bool((config.get("training") or {}).get("enabled", False))


def report_published(model):
    """The model has a published embedding model (models.<key>.embedding_source): never
    trained, no snapshots (the same rule as rules/common.smk; kept here so the report rules
    stand alone)."""
    return "embedding_source" in ((config.get("models") or {}).get(model) or {})


def report_members(pair):
    return [config["pairs"][pair][role] for role in ("base", "reasoning")]


def report_trained_models():
    return {
        m
        for p in PAIRS
        if report_training_enabled() and config["pairs"][p].get("train", True)
        for m in report_members(p)
        if not report_published(m)
    }


def report_pair_trains(pair):
    """The pair has embedding models: each member trained or published."""
    trained = report_trained_models()
    return all(report_published(m) or m in trained for m in report_members(pair))


def report_pair_snapshots(pair):
    """Training snapshots exist for the pair: both members trained (none published)."""
    trained = report_trained_models()
    return all(m in trained for m in report_members(pair))


def report_pair_stages(pair):
    """The main stages with results for a pair: embedding models only where both exist."""
    return [s for s in STAGES_MAIN if s != "emb" or report_pair_trains(pair)]


def report_stages():
    """The main stages with results for at least one pair."""
    return [s for s in STAGES_MAIN if any(s in report_pair_stages(p) for p in PAIRS)]


def report_main_dataset():
    return report_setting("main_dataset") or HRSA_DATASETS[0]


def report_probe_dataset():
    labelled = list(PROBE_DATASETS_LABELLED)
    probe = ((config.get("hrsa") or {}).get("probe") or {}).get("dataset")
    default = probe if probe in labelled else (labelled[0] if labelled else None)
    return report_setting("probe_dataset") or default


def report_figure3_pairs():
    chosen = report_setting("figure3_pairs")
    if chosen:
        return list(chosen)
    firsts = []
    for family in ("SFT", "RLVR"):
        firsts += [p for p in PAIRS if config["pairs"][p]["family"].upper() == family][
            :1
        ]
    return firsts or list(PAIRS[:2])


def report_dynamics_pairs():
    return [
        p
        for p in PAIRS
        if report_pair_snapshots(p) and any(n > 0 for n in dynamics_steps(p))
    ]


def report_dynamics_datasets():
    training = config.get("training") or {}
    return list(training.get("dynamics_datasets") or HRSA_DATASETS[:1])


def report_dataset_labels():
    return dict(report_setting("dataset_labels") or {})


def report_include_table1():
    evaluated = bool((config.get("evaluation") or {}).get("enabled", False))
    default = evaluated and any(report_pair_trains(p) for p in PAIRS)
    return bool(report_setting("include_table1", default))


def report_pairs():
    """What every report script gets to name pairs and models."""
    return {"pairs": config["pairs"], "models": config["models"]}


def hrsa_results(name, pairs=None, stages=None, datasets=None):
    """results/hrsa/{pair}/{stage}/{dataset}/{name} of the given pairs (default: all), stages
    (default: the pair's main stages; others are kept only where the pair has them) and
    datasets (default: the HRSA datasets)."""
    files = []
    for pair in PAIRS if pairs is None else pairs:
        main = report_pair_stages(pair)
        wanted = (
            main
            if stages is None
            else [s for s in stages if s in main or s not in STAGES_MAIN]
        )
        for stage in wanted:
            for dataset in HRSA_DATASETS if datasets is None else datasets:
                files.append(f"results/hrsa/{pair}/{stage}/{dataset}/{name}")
    return files


def report_probe_results(pairs=None, stages=None):
    dataset = report_probe_dataset()
    if dataset is None:
        return []
    return hrsa_results("probe.csv", pairs=pairs, stages=stages, datasets=[dataset])


def report_dynamics_results(wildcards):
    """Summaries of every snapshot of one pair; the backbone stands for step 0."""
    steps = [f"step{n}" for n in dynamics_steps(wildcards.pair) if n > 0]
    return hrsa_results(
        "summary.json",
        pairs=[wildcards.pair],
        stages=["backbone", *steps],
        datasets=report_dynamics_datasets(),
    )


def report_table7_inputs():
    """The training-data report and, when mining runs, the miner's report (Table 7)."""
    mining = (config.get("training") or {}).get("mining") or {}
    files = {"data": "results/data/train/contrastive.jsonl.report.json"}
    if mining.get("enabled", True):
        files["mining"] = "results/data/train/mined.jsonl.report.json"
    return files


def report_tables():
    numbers = [2, 3, 4, 12]
    if report_trained_models():
        numbers.append(7)
    if "emb" in report_stages():
        numbers.append(13)
    if report_include_table1():
        numbers.insert(0, 1)
    return [
        f"{REPORT}/table{n}.{ext}" for n in sorted(numbers) for ext in ("csv", "md")
    ]


def report_figures():
    stages = report_stages()
    numbers = [3] + [int(n) for n, (_, s) in REPORT_LAYER_GRIDS.items() if s in stages]
    if report_probe_dataset() is not None:
        numbers += [4] + [int(n) for n, s in REPORT_PROBE_GRIDS.items() if s in stages]
    stems = [f"figure{n}" for n in sorted(numbers)]
    stems += [f"figure5/{pair}" for pair in report_dynamics_pairs()]
    stems += [f"pairs/{pair}" for pair in PAIRS]
    return [f"{REPORT}/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]


def report_targets():
    """Every report output (rule all collects this through all_targets())."""
    return [f"{REPORT}/README.md", *report_tables(), *report_figures()]


def report_skipped():
    """Outputs not built with this config, and why (listed in the README)."""
    skipped = {}
    if not report_include_table1():
        skipped["Table 1"] = (
            "no MTEB evaluation in this config (report.include_table1 / evaluation.enabled)."
        )
    if not report_trained_models():
        skipped["Table 7"] = (
            "no contrastive training in this config (training.enabled, or every embedding "
            "model is published: models.<key>.embedding_source)."
        )
    if "emb" not in report_stages():
        skipped["Embedding-model outputs (Figures 7, 9, 11, 13; Table 13)"] = (
            "no pair is trained into embedding models in this config."
        )
    if report_probe_dataset() is None:
        skipped["Figures 4, 12, 13"] = "no labelled probe dataset is configured."
    if not report_dynamics_pairs():
        skipped["Figure 5"] = (
            "no pair is trained with snapshots (training.save_every; a pair with a published "
            "embedding model has none)."
        )
    return skipped
