# project stage: W / W+ optimisation of each target into the condition's generator.


rule project_image:
    input:
        unpack(get_project_inputs),
    output:
        directory(PROJECTED),
    log:
        "results/logs/project/{condition}/{source}/{item}.log",
    benchmark:
        "results/benchmarks/project/{condition}/{source}/{item}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    params:
        cli=script("project.py"),
        loss=get_condition_loss,
        latent=get_condition_latent,
        steps=config["project"]["steps"],
        projector=get_projector_params,
        lpips_net=config["lpips"]["net"],
        lpips_backbone=config["lpips"]["backbone"],
        device=config["device"],
        identity=get_identity_arg,
        torch_home=TORCH_HOME,
    shell:
        "TORCH_HOME={params.torch_home} {params.cli} --weights {input.weights} --loss {params.loss} "
        "--latent {params.latent} --steps {params.steps} --params {params.projector:q} "
        "--lpips-net {params.lpips_net} --lpips-backbone {params.lpips_backbone} --device {params.device} "
        "{params.identity} --threads {threads} --out {output} {input.target}/image.png > {log} 2>&1"
