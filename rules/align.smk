# align stage: FFHQ alignment from dlib's 68 landmarks (or a centre crop, or a resize of inputs
# that are already aligned), with head pose. No face / unreadable inputs are recorded in align.csv.


rule align_face:
    input:
        get_align_input,
    output:
        directory(ALIGNED),
    log:
        "results/logs/align/{alignment}-{size}/{pre}/{source}/{item}.log",
    benchmark:
        "results/benchmarks/align/{alignment}-{size}/{pre}/{source}/{item}.tsv"
    conda:
        "../envs/study.yaml"
    params:
        cli=script("align.py"),
        mode=get_align_mode,
        max_pixels=config["max_pixels"],
    shell:
        "{params.cli} --mode {params.mode} --size {wildcards.size} "
        "--max-pixels {params.max_pixels} --out {output} {input}/image.png > {log} 2>&1"
