# Settings and targets of the HRSA rules (rules/hrsa.smk includes this file; no rules here).
# Uses from rules/common.smk: PROBE_DATASETS_LABELLED, analysis_units(). all_targets() in
# rules/common.smk picks up hrsa_targets().


def hrsa_settings():
    """config["hrsa"] without the keys of other rules; the global device is the default."""
    settings = {"device": config.get("device", "auto")}
    settings.update(
        {
            k: v
            for k, v in config["hrsa"].items()
            if k not in ("datasets", "probe", "gpus")
        }
    )
    return settings


def hrsa_targets():
    """metrics.csv + summary.json of every analysis unit; probe.csv where labelled."""
    targets = []
    for pair, stage, dataset in analysis_units():
        targets += expand(
            "results/hrsa/{pair}/{stage}/{dataset}/{name}",
            pair=pair,
            stage=stage,
            dataset=dataset,
            name=["metrics.csv", "summary.json"],
        )
    for pair, stage, dataset in analysis_units(dynamics=False):
        if dataset in PROBE_DATASETS_LABELLED:
            targets.append(f"results/hrsa/{pair}/{stage}/{dataset}/probe.csv")
    return targets
