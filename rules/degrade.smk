# degrade stage: seeded degradations of the raw input (before alignment) or of the aligned
# face (after alignment). Skipped inputs stay skipped, with the upstream reason.


rule degrade_raw:
    input:
        INPUT,
    output:
        directory(DEGRADED_RAW),
    log:
        "results/logs/degrade/raw/{degrade}/{source}/{item}.log",
    conda:
        "../envs/study.yaml"
    params:
        cli=script("degrade.py"),
        op=get_degrade_op,
        level=get_degrade_level,
        seed=STUDY.seed,
    shell:
        "{params.cli} --op {params.op} --level {params.level} --seed {params.seed} "
        "--out {output} {input}/image.png > {log} 2>&1"


rule degrade_aligned:
    input:
        ALIGNED.replace("{pre}", "clean"),
    output:
        directory(DEGRADED_ALIGNED),
    log:
        "results/logs/degrade/{alignment}-{size}/{degrade}/{source}/{item}.log",
    conda:
        "../envs/study.yaml"
    params:
        cli=script("degrade.py"),
        op=get_degrade_op,
        level=get_degrade_level,
        seed=STUDY.seed,
    shell:
        "{params.cli} --op {params.op} --level {params.level} --seed {params.seed} "
        "--out {output} {input}/image.png > {log} 2>&1"
