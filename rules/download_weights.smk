# download-weights stage: generator checkpoints in the rosinality format under data/weights/.


rule make_stand_in_generator:
    output:
        WEIGHTS,
    log:
        "results/logs/download_weights/{weights}.log",
    wildcard_constraints:
        weights=_alternatives(_weights_of_kind("stand_in")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("make_stand_in_generator.py"),
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
