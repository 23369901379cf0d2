# StyleGAN2 inversion study: what input data does inversion need?
# Thin entry point: config, schema validation, one include per stage, final targets.
# Main job:     snakemake --cores 4 results/figures
# Offline demo: snakemake --cores 2 --configfile tests/demo.yaml results/figures

from snakemake.utils import min_version, validate

min_version("8.0")


# config.yaml is the real study; a --configfile given on the command line (e.g. the offline
# demo, tests/demo.yaml) replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, schema="schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/download_weights.smk"
include: "rules/generate.smk"
include: "rules/degrade.smk"
include: "rules/align.smk"
include: "rules/project.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        FIGURES,
