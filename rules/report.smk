# The report: every table and figure of the paper from results/hrsa and results/mteb.
# Which outputs exist and what each reads: hrsa.plan.Plan (report_* methods, documented in
# config/README.md under `report`). Targets: report_all (all of it), results/report/table{N}.csv
# (one table), results/report/pairs/{pair}.png (one pair). Every rule here reads a few small
# files and draws: local rules, never cluster jobs.


localrules:
    report_table1,
    report_table2,
    report_table3,
    report_table4,
    report_table6,
    report_table7,
    report_table11,
    report_h_inv_table,
    report_figure3,
    report_figure4,
    report_figure5,
    report_table8_figure,
    report_task_training,
    report_layer_grid,
    report_probe_grid,
    report_pair,
    report_readme,
    report_all,


rule report_table1:
    input:
        table=paths.TABLE1,
        instructions=paths.INSTRUCTIONS,
    output:
        csv=report(
            f"{paths.REPORT}/table1.csv",
            caption="../workflow/report/table1.rst",
            category="Tables",
            labels={"table": "Table 1"},
        ),
        md=f"{paths.REPORT}/table1.md",
        appendix_csv=report(
            f"{paths.INSTRUCTIONS_APPENDIX}.csv",
            caption="../workflow/report/instructions.rst",
            category="Tables",
            labels={"table": "Table 1: instructions"},
        ),
        appendix_md=f"{paths.INSTRUCTIONS_APPENDIX}.md",
    log:
        "logs/report/table1.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
    script:
        "../workflow/scripts/report_table1.py"


rule report_table2:
    input:
        summaries=PLAN.hrsa_results("summary.json", datasets=[PLAN.main_dataset()]),
        probes=PLAN.probe_results(),
    output:
        csv=report(
            f"{paths.REPORT}/table2.csv",
            caption="../workflow/report/table2.rst",
            category="Tables",
            labels={"table": "Table 2"},
        ),
        md=f"{paths.REPORT}/table2.md",
        contrast=f"{paths.REPORT}/{paths.RLVR_VS_SFT}.csv",
    log:
        "logs/report/table2.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        dataset=PLAN.main_dataset(),
        probe_dataset=PLAN.probe_dataset(),
        thresholds=PLAN.verdict_thresholds(),
    script:
        "../workflow/scripts/report_table2.py"


rule report_table3:
    input:
        summaries=PLAN.hrsa_results("summary.json", datasets=[PLAN.main_dataset()]),
    output:
        csv=report(
            f"{paths.REPORT}/table3.csv",
            caption="../workflow/report/table3.rst",
            category="Tables",
            labels={"table": "Table 3"},
        ),
        md=f"{paths.REPORT}/table3.md",
    log:
        "logs/report/table3.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        dataset=PLAN.main_dataset(),
    script:
        "../workflow/scripts/report_table3.py"


rule report_table4:
    input:
        summaries=PLAN.hrsa_results("summary.json", datasets=[PLAN.main_dataset()]),
    output:
        csv=report(
            f"{paths.REPORT}/table4.csv",
            caption="../workflow/report/table4.rst",
            category="Tables",
            labels={"table": "Table 4"},
        ),
        md=f"{paths.REPORT}/table4.md",
    log:
        "logs/report/table4.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        dataset=PLAN.main_dataset(),
    script:
        "../workflow/scripts/report_table4.py"


rule report_table6:
    input:
        summary=paths.MTEB_SUMMARY,
    output:
        csv=report(
            f"{paths.REPORT}/table6.csv",
            caption="../workflow/report/table6.rst",
            category="Tables",
            labels={"table": "Table 6"},
        ),
        md=f"{paths.REPORT}/table6.md",
    log:
        "logs/report/table6.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.table6_settings(),
    script:
        "../workflow/scripts/report_table6.py"


rule report_table7:
    input:
        **PLAN.table7_inputs(),
    output:
        csv=report(
            f"{paths.REPORT}/table7.csv",
            caption="../workflow/report/table7.rst",
            category="Tables",
            labels={"table": "Table 7"},
        ),
        md=f"{paths.REPORT}/table7.md",
    log:
        "logs/report/table7.log",
    conda:
        "../envs/hrsa.yaml"
    script:
        "../workflow/scripts/report_table7.py"


rule report_table11:
    input:
        PLAN.cot_stats_files(),
    output:
        csv=report(
            f"{paths.REPORT}/table11.csv",
            caption="../workflow/report/table11.rst",
            category="Tables",
            labels={"table": "Table 11"},
        ),
        md=f"{paths.REPORT}/table11.md",
        card=report(
            f"{paths.REPORT}/{paths.COT_CARD}.md",
            caption="../workflow/report/cot_card.rst",
            category="Tables",
            labels={"table": "Table 11: dataset card"},
        ),
    log:
        "logs/report/table11.log",
    conda:
        "../envs/hrsa.yaml"
    script:
        "../workflow/scripts/report_table11.py"


rule report_h_inv_table:
    input:
        summaries=lambda wc: PLAN.hrsa_results(
            "summary.json", stages=[paths.H_INV_TABLES[wc.number]]
        ),
    output:
        csv=report(
            f"{paths.REPORT}/table{{number}}.csv",
            caption="../workflow/report/table_h_inv.rst",
            category="Tables",
            labels={"table": "Table {number}"},
        ),
        md=f"{paths.REPORT}/table{{number}}.md",
    log:
        "logs/report/table{number}.log",
    wildcard_constraints:
        number="12|13",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        stage=lambda wc: paths.H_INV_TABLES[wc.number],
        datasets=PLAN.hrsa_datasets,
        dataset_labels=PLAN.dataset_labels(),
    script:
        "../workflow/scripts/report_h_inv_table.py"


rule report_figure3:
    input:
        metrics=PLAN.hrsa_results(
            "metrics.csv",
            pairs=PLAN.figure3_pairs(),
            datasets=[PLAN.main_dataset()],
        ),
    output:
        png=report(
            f"{paths.REPORT}/figure3.png",
            caption="../workflow/report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3"},
        ),
        pdf=f"{paths.REPORT}/figure3.pdf",
    log:
        "logs/report/figure3.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        metrics_not_computed=PLAN.metrics_left_out(),
        figure_pairs=PLAN.figure3_pairs(),
        stages=PLAN.report_stages(),
        dataset=PLAN.main_dataset(),
    script:
        "../workflow/scripts/report_figure3.py"


rule report_figure4:
    input:
        probes=PLAN.probe_results(pairs=PLAN.figure3_pairs()),
    output:
        png=report(
            f"{paths.REPORT}/figure4.png",
            caption="../workflow/report/figure4.rst",
            category="Figures",
            labels={"figure": "Figure 4"},
        ),
        pdf=f"{paths.REPORT}/figure4.pdf",
    log:
        "logs/report/figure4.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        figure_pairs=PLAN.figure3_pairs(),
        stages=PLAN.report_stages(),
        dataset=PLAN.probe_dataset(),
    script:
        "../workflow/scripts/report_figure4.py"


rule report_table8_figure:
    input:
        metrics=PLAN.hrsa_results("metrics.csv", datasets=[PLAN.main_dataset()]),
        probe_metrics=PLAN.probe_metric_results(),
        plugins=PLAN.hrsa_plugin_files(),
    output:
        png=report(
            f"{paths.REPORT}/{paths.TABLE8_FIGURE}.png",
            caption="../workflow/report/table8_figure.rst",
            category="Figures",
            labels={"figure": "Table 8 alternatives"},
        ),
        pdf=f"{paths.REPORT}/{paths.TABLE8_FIGURE}.pdf",
        csv=f"{paths.REPORT}/{paths.TABLE8_FIGURE}.csv",
    log:
        "logs/report/table8_figure.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        metrics=PLAN.extra_metrics(),
        probe_metrics=PLAN.probe_extra_metrics(),
        plugins=PLAN.hrsa_plugins(),
        dataset=PLAN.main_dataset(),
        probe_dataset=PLAN.probe_dataset(),
    script:
        "../workflow/scripts/report_table8_figure.py"


# What RL and SFT did on the tiny models' verifiable task: their build records (hrsa.tiny_rl).
rule report_task_training:
    input:
        records=PLAN.task_figure_inputs(),
    output:
        png=report(
            f"{paths.REPORT}/{paths.TASK_FIGURE}.png",
            caption="../workflow/report/task_training.rst",
            category="Figures",
            labels={"figure": "Tiny pairs' training"},
        ),
        pdf=f"{paths.REPORT}/{paths.TASK_FIGURE}.pdf",
        csv=f"{paths.REPORT}/{paths.TASK_FIGURE}.csv",
    log:
        "logs/report/task_training.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        task_models=PLAN.task_trained_models(),
    script:
        "../workflow/scripts/report_task_training.py"


rule report_figure5:
    input:
        summaries=lambda wc: PLAN.dynamics_results(wc.pair),
    output:
        png=report(
            f"{paths.REPORT}/figure5/{{pair}}.png",
            caption="../workflow/report/figure5.rst",
            category="Figures",
            subcategory="Figure 5: training dynamics",
            labels={"figure": "Figure 5", "pair": "{pair}"},
        ),
        pdf=f"{paths.REPORT}/figure5/{{pair}}.pdf",
    log:
        "logs/report/figure5/{pair}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        metrics_not_computed=PLAN.metrics_left_out(),
        datasets=PLAN.dynamics_datasets(),
        dataset_labels=PLAN.dataset_labels(),
    script:
        "../workflow/scripts/report_figure5.py"


rule report_layer_grid:
    input:
        metrics=lambda wc: PLAN.hrsa_results(
            "metrics.csv", stages=[paths.LAYER_GRIDS[wc.number][1]]
        ),
    output:
        png=report(
            f"{paths.REPORT}/figure{{number}}.png",
            caption="../workflow/report/figure_layer_grid.rst",
            category="Figures",
            labels={"figure": "Figure {number}"},
        ),
        pdf=f"{paths.REPORT}/figure{{number}}.pdf",
    log:
        "logs/report/figure{number}.log",
    wildcard_constraints:
        number="6|7|8|9|10|11",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        metric=lambda wc: paths.LAYER_GRIDS[wc.number][0],
        stage=lambda wc: paths.LAYER_GRIDS[wc.number][1],
        datasets=PLAN.hrsa_datasets,
        dataset_labels=PLAN.dataset_labels(),
    script:
        "../workflow/scripts/report_layer_grid.py"


rule report_probe_grid:
    input:
        probes=lambda wc: PLAN.probe_results(stages=[paths.PROBE_GRIDS[wc.number]]),
    output:
        png=report(
            f"{paths.REPORT}/figure{{number}}.png",
            caption="../workflow/report/figure_probe_grid.rst",
            category="Figures",
            labels={"figure": "Figure {number}"},
        ),
        pdf=f"{paths.REPORT}/figure{{number}}.pdf",
    log:
        "logs/report/figure{number}.log",
    wildcard_constraints:
        number="12|13",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        stage=lambda wc: paths.PROBE_GRIDS[wc.number],
        dataset=PLAN.probe_dataset(),
        dataset_labels=PLAN.dataset_labels(),
    script:
        "../workflow/scripts/report_probe_grid.py"


rule report_pair:
    input:
        metrics=lambda wc: PLAN.hrsa_results("metrics.csv", pairs=[wc.pair]),
    output:
        png=report(
            f"{paths.REPORT}/pairs/{{pair}}.png",
            caption="../workflow/report/pair.rst",
            category="Per pair",
            labels={"pair": "{pair}"},
        ),
        pdf=f"{paths.REPORT}/pairs/{{pair}}.pdf",
    log:
        "logs/report/pairs/{pair}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        metrics_not_computed=PLAN.metrics_left_out(),
        stages=PLAN.report_stages(),
        datasets=PLAN.hrsa_datasets,
        dataset_labels=PLAN.dataset_labels(),
    script:
        "../workflow/scripts/report_pair.py"


rule report_readme:
    input:
        tables=PLAN.report_tables(),
        figures=PLAN.report_figures(),
    output:
        f"{paths.REPORT}/README.md",
    log:
        "logs/report/readme.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.report_names(),
        skipped=PLAN.report_skipped(),
    script:
        "../workflow/scripts/report_readme.py"


rule report_all:
    input:
        PLAN.report_targets(),
    log:
        "logs/report/all.log",
    conda:
        "../envs/hrsa.yaml"
    shell:
        "echo report complete > {log}"
