# figures stage: per question a montage and metric-vs-level plots with 95% bootstrap CIs.


rule plot_figures:
    input:
        ALL_METRICS,
    output:
        report(
            directory(FIGURES),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "results/logs/figures/figures.log",
    conda:
        "../envs/study.yaml"
    params:
        cli=script("figures.py"),
        config=get_config_json,
    shell:
        "{params.cli} --config {params.config:q} --metrics {input} "
        "--out {output} > {log} 2>&1"
