# download-weights stage: network assets under data/weights/ (generators and identity networks
# as <name>.pt, LPIPS backbones under data/weights/torch/hub/checkpoints/ where torchvision looks).
# Downloads run where Snakemake runs (a cluster's login node usually has internet, nodes often not).


localrules:
    download_weights,
    download_lpips_backbone,


rule make_stand_in_weights:
    output:
        WEIGHTS,
    log:
        "results/logs/download_weights/{weights}.log",
    wildcard_constraints:
        weights=_alternatives(_weights_of_kind("stand_in")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("make_stand_in.py"),
        args=get_stand_in_args,
    shell:
        "{params.cli} {params.args} --out {output} > {log} 2>&1"


rule download_weights:
    output:
        WEIGHTS,
    log:
        "results/logs/download_weights/{weights}.log",
    wildcard_constraints:
        weights=_alternatives(_weights_of_kind("url")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("download_weights.py"),
        args=get_download_args,
    shell:
        "{params.cli} {params.args} --out {output} 2>&1 | tee {log}"


rule download_lpips_backbone:
    output:
        HUB_FILE,
    log:
        "results/logs/download_weights/{hubfile}.log",
    conda:
        "../envs/study.yaml"
    params:
        cli=script("download_weights.py"),
        args=get_hub_download_args,
    shell:
        "{params.cli} {params.args} --out {output} 2>&1 | tee {log}"
