# generate stage: every input becomes an item folder results/inputs/<source>/<item>/ holding
# image.png (upright RGB) and generate.csv (status; unreadable files are recorded, not fatal).


rule make_demo_clip:
    output:
        DEMO_VIDEO,
    log:
        "results/logs/generate/demo_clip/{source}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("bundled_video")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        photo=get_demo_clip_photo,
        frames=get_demo_clip_frames,
    shell:
        "{params.cli} demo-clip --photo {params.photo} --frames {params.frames} "
        "--out {output} > {log} 2>&1"


checkpoint extract_frames:
    input:
        get_video,
    output:
        directory(FRAMES),
    log:
        "results/logs/generate/frames/{source}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("video", "bundled_video")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        select=get_frame_selection,
    shell:
        "{params.cli} frames {input} {params.select} --out {output} > {log} 2>&1"


rule ingest_frame:
    input:
        get_frame,
    output:
        directory(INPUT),
    log:
        "results/logs/generate/inputs/{source}/{item}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("video", "bundled_video")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        max_pixels=config["max_pixels"],
    shell:
        "{params.cli} ingest {input} --stem image --max-pixels {params.max_pixels} "
        "--out {output} > {log} 2>&1"


rule ingest_image:
    input:
        get_folder_file,
    output:
        directory(INPUT),
    log:
        "results/logs/generate/inputs/{source}/{item}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("folder")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        max_pixels=config["max_pixels"],
    shell:
        "{params.cli} ingest {input:q} --stem image --max-pixels {params.max_pixels} "
        "--out {output} > {log} 2>&1"


rule copy_bundled_photo:
    output:
        directory(INPUT),
    log:
        "results/logs/generate/inputs/{source}/{item}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("bundled")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        max_pixels=config["max_pixels"],
    shell:
        "{params.cli} bundled {wildcards.item} --stem image "
        "--max-pixels {params.max_pixels} --out {output} > {log} 2>&1"


rule generate_sample:
    input:
        get_sample_weights,
    output:
        directory(INPUT),
    log:
        "results/logs/generate/inputs/{source}/{item}.log",
    wildcard_constraints:
        source=_alternatives(_sources_of_kind("samples")),
    conda:
        "../envs/study.yaml"
    params:
        cli=script("generate.py"),
        seed=get_sample_seed,
        truncation=get_sample_truncation,
        device=config["device"],
    shell:
        "{params.cli} samples --weights {input} --seed {params.seed} "
        "--truncation {params.truncation} --device {params.device} --stem image --out {output} > {log} 2>&1"
