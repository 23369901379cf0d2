# metrics stage: one tidy table, one row per image x condition.


rule compute_metrics:
    input:
        get_metrics_inputs,
    output:
        METRICS,
    log:
        "results/logs/metrics/{condition}.log",
    benchmark:
        "results/benchmarks/metrics/{condition}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    params:
        cli=script("metrics.py"),
        item_list=get_condition_items_json,
        config=get_metrics_config_json,
        device=config["device"],
        torch_home=TORCH_HOME,
    shell:
        "TORCH_HOME={params.torch_home} OMP_NUM_THREADS={threads} {params.cli} --config {params.config:q} "
        "--condition {wildcards.condition:q} --items {params.item_list:q} --device {params.device} "
        "--out {output} > {log} 2>&1"


rule collect_metrics:
    input:
        get_all_metrics,
    output:
        ALL_METRICS,
    log:
        "results/logs/metrics/collect.log",
    conda:
        "../envs/study.yaml"
    params:
        cli=script("metrics.py"),
    shell:
        "{params.cli} --collect {input:q} --out {output} > {log} 2>&1"
