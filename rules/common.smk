# Helpers shared by the stage rules: the expanded study design, wildcard constraints and
# input functions. All logic lives in the stylegan_inversion package; this file wires it.

import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from stylegan_inversion.study import (
    ALIGNED,
    ALL_METRICS,
    DEGRADED_ALIGNED,
    DEGRADED_RAW,
    DEMO_VIDEO,
    FIGURES,
    FRAMES,
    HUB_FILE,
    INPUT,
    METRICS,
    PROJECTED,
    TORCH_HOME,
    WEIGHTS,
    Study,
    StudyError,
    parse_degrade,
)

try:
    STUDY = Study(config)
except StudyError as e:
    raise WorkflowError(f"config: {e}")


def _alternatives(values):
    """Regex matching exactly one of the values (never matches when the list is empty)."""
    values = sorted(set(values), key=len, reverse=True)
    return "|".join(re.escape(v) for v in values) if values else "(?!)"


def _sources_of_kind(*kinds):
    return [n for n, s in STUDY.sources.items() if s.kind in kinds]


def _weights_of_kind(kind):
    return [n for n, w in STUDY.weights.items() if w.get("kind") == kind]


def _python():
    """The interpreter running Snakemake (its venv has the package), or conda's under --use-conda."""
    try:
        from snakemake.settings.types import DeploymentMethod

        if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
            return "python"
    except (ImportError, AttributeError):
        pass
    return sys.executable


PYTHON = _python()
SCRIPTS = Path(workflow.basedir) / "scripts"


def script(name):
    """Command prefix running one of the workflow's scripts with the workflow's interpreter."""
    return f"{PYTHON} {SCRIPTS / name}"


DEGRADE_IDS = STUDY.degrade_ids()


wildcard_constraints:
    source=_alternatives(STUDY.sources),
    item="[A-Za-z0-9._-]+",
    condition=_alternatives(STUDY.conditions),
    degrade=_alternatives(DEGRADE_IDS),
    pre=_alternatives(["clean"] + DEGRADE_IDS),
    alignment="ffhq|center",
    size="[0-9]+",
    weights=_alternatives(STUDY.weights),
    hubfile=_alternatives(
        w["torch_hub"] for w in STUDY.weights.values() if w.get("torch_hub")
    ),


# ---------------------------------------------------------------- items


def get_items(source):
    """Items of a source; video frames are known after the extract_frames checkpoint."""
    src = STUDY.sources[source]
    if src.kind in ("video", "bundled_video"):
        folder = Path(checkpoints.extract_frames.get(source=source).output[0])
        return sorted(p.stem for p in folder.glob("f*.png"))
    return STUDY.static_items(source)


def get_video(wildcards):
    src = STUDY.sources[wildcards.source]
    if src.kind == "bundled_video":
        return DEMO_VIDEO.format(source=wildcards.source)
    if not Path(src.spec["path"]).is_file():
        raise WorkflowError(
            f"config sources.{wildcards.source}: video {src.spec['path']} not found. Put the clip there "
            "(see data/README.md) or remove the source from the config."
        )
    return src.spec["path"]


def get_folder_file(wildcards):
    """The user's file behind a folder-source item."""
    items = STUDY.folder_files(wildcards.source)
    if wildcards.item not in items:
        raise WorkflowError(
            f"source {wildcards.source}: no file for item {wildcards.item}"
        )
    return str(items[wildcards.item])


def get_frame(wildcards):
    folder = checkpoints.extract_frames.get(source=wildcards.source).output[0]
    return f"{folder}/{wildcards.item}.png"


def get_sample_seed(wildcards):
    return STUDY.item_seed("sample", wildcards.source, wildcards.item)


def get_sample_weights(wildcards):
    return WEIGHTS.format(weights=STUDY.sources[wildcards.source].spec["generator"])


# ---------------------------------------------------------------- degrade / align


def get_degrade_op(wildcards):
    return parse_degrade(wildcards.degrade)[0]


def get_degrade_level(wildcards):
    return parse_degrade(wildcards.degrade)[1]


def get_align_input(wildcards):
    if wildcards.pre == "clean":
        return INPUT.format(source=wildcards.source, item=wildcards.item)
    return DEGRADED_RAW.format(
        degrade=wildcards.pre, source=wildcards.source, item=wildcards.item
    )


def get_align_mode(wildcards):
    return STUDY.align_mode(wildcards.source, wildcards.alignment)


# ---------------------------------------------------------------- project


def get_condition(wildcards):
    return STUDY.conditions[wildcards.condition]


def get_project_inputs(wildcards):
    """Target folder, generator, and the LPIPS backbone / identity network the loss needs."""
    c = get_condition(wildcards)
    inputs = {
        "target": STUDY.target_dir(c, wildcards.source, wildcards.item),
        "weights": WEIGHTS.format(weights=c.generator),
    }
    terms = c.loss.split("+")
    if "lpips" in terms and STUDY.lpips_backbone_file(config["lpips"]["net"]):
        inputs["lpips"] = STUDY.lpips_backbone_file(config["lpips"]["net"])
    if "id" in terms:
        inputs["identity"] = WEIGHTS.format(weights=STUDY.identity)
    return inputs


def get_identity_arg(wildcards, input):
    return f"--identity {input.identity}" if "identity" in input.keys() else ""


def get_projector_params(wildcards):
    """Projector settings as JSON (part of the job's params: changing one re-runs projection)."""
    p = {k: v for k, v in config["project"].items() if k != "steps"}
    p["seed"] = STUDY.seed
    return json.dumps(p, sort_keys=True)


# ---------------------------------------------------------------- metrics / figures


def get_condition_items(wildcards):
    """{source: [items]} of a condition (waits for frame extraction of video sources)."""
    return {s: get_items(s) for s in STUDY.condition_sources(wildcards.condition)}


def get_condition_items_json(wildcards):
    return json.dumps(get_condition_items(wildcards), sort_keys=True)


def get_metrics_inputs(wildcards):
    c = get_condition(wildcards)
    files = []
    backbone = STUDY.lpips_backbone_file(config["metrics"].get("lpips_net", "alex"))
    if backbone:
        files.append(backbone)
    if STUDY.identity:
        files.append(WEIGHTS.format(weights=STUDY.identity))
    for source, items in get_condition_items(wildcards).items():
        for item in items:
            files.append(PROJECTED.format(condition=c.id, source=source, item=item))
            files.append(STUDY.target_dir(c, source, item))
            files.append(STUDY.clean_dir(c, source, item))
            files.append(INPUT.format(source=source, item=item))
    return sorted(set(files))


def get_all_metrics(wildcards):
    return [METRICS.format(condition=c) for c in sorted(STUDY.conditions)]


def get_config_json(wildcards):
    return json.dumps(config, sort_keys=True, default=str)


def get_metrics_config_json(wildcards):
    """The config without what metrics do not read (projector, figure settings, titles), so
    changing those does not re-run every metrics job through its params."""
    c = {
        k: v
        for k, v in config.items()
        if k not in ("project", "mirror", "study", "max_pixels")
    }
    c["metrics"] = {
        k: v for k, v in config["metrics"].items() if k not in ("bootstrap", "ci")
    }
    c["questions"] = {
        name: {k: v for k, v in q.items() if k not in ("title", "factor")}
        for name, q in config["questions"].items()
    }
    return json.dumps(c, sort_keys=True, default=str)


# ---------------------------------------------------------------- weights


def get_stand_in_args(wildcards):
    """Arguments of make_stand_in.py for a stand-in generator or identity network."""
    w = STUDY.weights[wildcards.weights]
    if w.get("role", "generator") == "identity":
        return f"identity --width {w.get('width', 16)} --seed {w.get('seed', 0)}"
    channels = ",".join(f"{k}:{v}" for k, v in w["channels"].items())
    return (
        f"generator --resolution {w['resolution']} --style-dim {w.get('style_dim', 64)} "
        f"--n-mlp {w.get('n_mlp', 2)} --channels {channels} --seed {w.get('seed', 0)}"
    )


def _download_args(name):
    """URL-form arguments of download_weights.py for registry entry ``name`` (quoted for the shell)."""
    from shlex import quote

    w = STUDY.weights[name]
    args = [f"--name {quote(name)}"]
    args += [
        f"--url {quote(u)}" for u in [w.get("url")] + list(w.get("urls") or []) if u
    ]
    for key in (
        "sha256",
        "size",
        "filename",
        "convert",
        "extract",
        "member",
        "member_sha256",
        "licence",
    ):
        if w.get(key) is not None:
            args.append(f"--{key.replace('_', '-')} {quote(str(w[key]))}")
    if config.get("mirror"):
        args.append(f"--mirror {quote(str(config['mirror']))}")
    return " ".join(args)


def get_download_args(wildcards):
    return _download_args(wildcards.weights)


def get_hub_download_args(wildcards):
    name = next(
        n for n, w in STUDY.weights.items() if w.get("torch_hub") == wildcards.hubfile
    )
    return _download_args(name)


# ---------------------------------------------------------------- generate


def get_demo_clip_photo(wildcards):
    return STUDY.sources[wildcards.source].spec.get("photo", "astronaut")


def get_demo_clip_frames(wildcards):
    return STUDY.sources[wildcards.source].spec.get("frames", 30)


def get_frame_selection(wildcards):
    """CLI options choosing a video's frames: --fps F or --stride N, and --max-frames M."""
    spec = STUDY.sources[wildcards.source].spec
    args = (
        f"--fps {spec['fps']}"
        if spec.get("fps")
        else f"--stride {spec.get('stride', 5)}"
    )
    if spec.get("max_frames"):
        args += f" --max-frames {spec['max_frames']}"
    return args


def get_sample_truncation(wildcards):
    return STUDY.sources[wildcards.source].spec.get("truncation", 1.0)


def get_condition_loss(wildcards):
    return get_condition(wildcards).loss


def get_condition_latent(wildcards):
    return get_condition(wildcards).latent
