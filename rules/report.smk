# The report: every table and figure of the paper from results/hrsa and results/mteb.
# Settings, defaults and input functions: rules/report_inputs.smk. Targets: report_all (all of
# it), results/report/table{N}.csv (one table), results/report/pairs/{pair}.png (one pair).


include: "report_inputs.smk"


rule report_table1:
    input:
        "results/mteb/table1.csv",
    output:
        csv=report(
            f"{REPORT}/table1.csv",
            caption="../workflow/report/table1.rst",
            category="Tables",
            labels={"table": "Table 1"},
        ),
        md=f"{REPORT}/table1.md",
    log:
        "logs/report/table1.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
    script:
        "../workflow/scripts/report_table1.py"


rule report_table2:
    input:
        summaries=hrsa_results("summary.json", datasets=[report_main_dataset()]),
        probes=report_probe_results(),
    output:
        csv=report(
            f"{REPORT}/table2.csv",
            caption="../workflow/report/table2.rst",
            category="Tables",
            labels={"table": "Table 2"},
        ),
        md=f"{REPORT}/table2.md",
    log:
        "logs/report/table2.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        dataset=report_main_dataset(),
        probe_dataset=report_probe_dataset(),
        thresholds=report_setting("verdicts") or {},
    script:
        "../workflow/scripts/report_table2.py"


rule report_table3:
    input:
        summaries=hrsa_results("summary.json", datasets=[report_main_dataset()]),
    output:
        csv=report(
            f"{REPORT}/table3.csv",
            caption="../workflow/report/table3.rst",
            category="Tables",
            labels={"table": "Table 3"},
        ),
        md=f"{REPORT}/table3.md",
    log:
        "logs/report/table3.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        dataset=report_main_dataset(),
    script:
        "../workflow/scripts/report_table3.py"


rule report_table4:
    input:
        summaries=hrsa_results("summary.json", datasets=[report_main_dataset()]),
    output:
        csv=report(
            f"{REPORT}/table4.csv",
            caption="../workflow/report/table4.rst",
            category="Tables",
            labels={"table": "Table 4"},
        ),
        md=f"{REPORT}/table4.md",
    log:
        "logs/report/table4.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        dataset=report_main_dataset(),
    script:
        "../workflow/scripts/report_table4.py"


rule report_table7:
    input:
        **report_table7_inputs(),
    output:
        csv=report(
            f"{REPORT}/table7.csv",
            caption="../workflow/report/table7.rst",
            category="Tables",
            labels={"table": "Table 7"},
        ),
        md=f"{REPORT}/table7.md",
    log:
        "logs/report/table7.log",
    conda:
        "../envs/hrsa.yaml"
    script:
        "../workflow/scripts/report_table7.py"


rule report_h_inv_table:
    input:
        summaries=lambda wc: hrsa_results(
            "summary.json", stages=[REPORT_H_INV_TABLES[wc.number]]
        ),
    output:
        csv=report(
            f"{REPORT}/table{{number}}.csv",
            caption="../workflow/report/table_h_inv.rst",
            category="Tables",
            labels={"table": "Table {number}"},
        ),
        md=f"{REPORT}/table{{number}}.md",
    log:
        "logs/report/table{number}.log",
    wildcard_constraints:
        number="12|13",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        stage=lambda wc: REPORT_H_INV_TABLES[wc.number],
        datasets=HRSA_DATASETS,
        dataset_labels=report_dataset_labels(),
    script:
        "../workflow/scripts/report_h_inv_table.py"


rule report_figure3:
    input:
        metrics=hrsa_results(
            "metrics.csv",
            pairs=report_figure3_pairs(),
            datasets=[report_main_dataset()],
        ),
    output:
        png=report(
            f"{REPORT}/figure3.png",
            caption="../workflow/report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3"},
        ),
        pdf=f"{REPORT}/figure3.pdf",
    log:
        "logs/report/figure3.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        figure_pairs=report_figure3_pairs(),
        stages=report_stages(),
        dataset=report_main_dataset(),
    script:
        "../workflow/scripts/report_figure3.py"


rule report_figure4:
    input:
        probes=report_probe_results(pairs=report_figure3_pairs()),
    output:
        png=report(
            f"{REPORT}/figure4.png",
            caption="../workflow/report/figure4.rst",
            category="Figures",
            labels={"figure": "Figure 4"},
        ),
        pdf=f"{REPORT}/figure4.pdf",
    log:
        "logs/report/figure4.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        figure_pairs=report_figure3_pairs(),
        stages=report_stages(),
        dataset=report_probe_dataset(),
    script:
        "../workflow/scripts/report_figure4.py"


rule report_figure5:
    input:
        summaries=report_dynamics_results,
    output:
        png=report(
            f"{REPORT}/figure5/{{pair}}.png",
            caption="../workflow/report/figure5.rst",
            category="Figures",
            subcategory="Figure 5: training dynamics",
            labels={"figure": "Figure 5", "pair": "{pair}"},
        ),
        pdf=f"{REPORT}/figure5/{{pair}}.pdf",
    log:
        "logs/report/figure5/{pair}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        datasets=report_dynamics_datasets(),
        dataset_labels=report_dataset_labels(),
    script:
        "../workflow/scripts/report_figure5.py"


rule report_layer_grid:
    input:
        metrics=lambda wc: hrsa_results(
            "metrics.csv", stages=[REPORT_LAYER_GRIDS[wc.number][1]]
        ),
    output:
        png=report(
            f"{REPORT}/figure{{number}}.png",
            caption="../workflow/report/figure_layer_grid.rst",
            category="Figures",
            labels={"figure": "Figure {number}"},
        ),
        pdf=f"{REPORT}/figure{{number}}.pdf",
    log:
        "logs/report/figure{number}.log",
    wildcard_constraints:
        number="6|7|8|9|10|11",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        metric=lambda wc: REPORT_LAYER_GRIDS[wc.number][0],
        stage=lambda wc: REPORT_LAYER_GRIDS[wc.number][1],
        datasets=HRSA_DATASETS,
        dataset_labels=report_dataset_labels(),
    script:
        "../workflow/scripts/report_layer_grid.py"


rule report_probe_grid:
    input:
        probes=lambda wc: report_probe_results(stages=[REPORT_PROBE_GRIDS[wc.number]]),
    output:
        png=report(
            f"{REPORT}/figure{{number}}.png",
            caption="../workflow/report/figure_probe_grid.rst",
            category="Figures",
            labels={"figure": "Figure {number}"},
        ),
        pdf=f"{REPORT}/figure{{number}}.pdf",
    log:
        "logs/report/figure{number}.log",
    wildcard_constraints:
        number="12|13",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        stage=lambda wc: REPORT_PROBE_GRIDS[wc.number],
        dataset=report_probe_dataset(),
        dataset_labels=report_dataset_labels(),
    script:
        "../workflow/scripts/report_probe_grid.py"


rule report_pair:
    input:
        metrics=lambda wc: hrsa_results("metrics.csv", pairs=[wc.pair]),
    output:
        png=report(
            f"{REPORT}/pairs/{{pair}}.png",
            caption="../workflow/report/pair.rst",
            category="Per pair",
            labels={"pair": "{pair}"},
        ),
        pdf=f"{REPORT}/pairs/{{pair}}.pdf",
    log:
        "logs/report/pairs/{pair}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        stages=report_stages(),
        datasets=HRSA_DATASETS,
        dataset_labels=report_dataset_labels(),
    script:
        "../workflow/scripts/report_pair.py"


rule report_readme:
    input:
        tables=report_tables(),
        figures=report_figures(),
    output:
        f"{REPORT}/README.md",
    log:
        "logs/report/readme.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **report_pairs(),
        skipped=report_skipped(),
    script:
        "../workflow/scripts/report_readme.py"


rule report_all:
    input:
        report_targets(),
    log:
        "logs/report/all.log",
    conda:
        "../envs/hrsa.yaml"
    shell:
        "echo report complete > {log}"
