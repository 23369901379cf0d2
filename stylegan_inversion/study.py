"""The study design: config -> sources, conditions, questions and the file paths that join them.

A *condition* is one complete recipe for turning an input image into an inversion:
which generator, how the face is aligned and at what size, which degradation (if
any) and whether it is applied before or after alignment, which loss and which
latent space. Each question of the study is a list of levels, each level the
baseline condition with a few factors changed. Conditions shared by several
questions (the baseline, above all) are computed once.

Everything here is pure Python on the config dict, so the DAG's expansion can be
tested without Snakemake; ``rules/common.smk`` wraps it into input functions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

FACTORS = ("generator", "alignment", "size", "degrade", "degrade_order", "loss", "latent")
ALIGNMENTS = ("ffhq", "center")
DEGRADE_ORDERS = ("after_align", "before_align")
LATENTS = ("w", "wplus")
LOSSES = ("lpips", "lpips+mse", "lpips+id", "id", "mse")
DEGRADE_OPS = ("jpeg", "blur", "downscale", "noise", "misalign", "realworld")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
DEGRADE_RE = re.compile(r"^(none|(?P<op>[a-z]+)-(?P<level>[0-9]+(\.[0-9]+)?))$")

# Path patterns (relative to the working directory). Item folders hold ``image.png``
# and the stage's CSV record; a skipped item has the record only.
WEIGHTS = "data/weights/{weights}.pt"
TORCH_HOME = "data/weights/torch"  # LPIPS backbones go where torchvision looks: $TORCH_HOME/hub/checkpoints
HUB_FILE = TORCH_HOME + "/hub/checkpoints/{hubfile}"
LPIPS_BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth", "squeeze": "squeezenet1_1-b8a52dc0.pth"}
DEMO_VIDEO = "results/demo/{source}.mp4"
FRAMES = "results/frames/{source}"
INPUT = "results/inputs/{source}/{item}"
DEGRADED_RAW = "results/degraded/raw/{degrade}/{source}/{item}"
ALIGNED = "results/aligned/{alignment}-{size}/{pre}/{source}/{item}"
DEGRADED_ALIGNED = "results/degraded/{alignment}-{size}/{degrade}/{source}/{item}"
PROJECTED = "results/projected/{condition}/{source}/{item}"
METRICS = "results/metrics/{condition}.csv"
ALL_METRICS = "results/metrics.csv"
FIGURES = "results/figures"
IMAGE = "image.png"


class StudyError(UserError, ValueError):
    """A study config that cannot be expanded; the message names the key."""


# Valid levels per degradation (larger is worse for all but jpeg, whose level is the quality).
DEGRADE_LEVELS = {
    "jpeg": (lambda v: 1 <= round(v) <= 100, "a quality in 1..100"),
    "blur": (lambda v: v >= 0, "a sigma >= 0"),
    "downscale": (lambda v: v >= 1, "a factor >= 1"),
    "noise": (lambda v: v >= 0, "a sigma >= 0"),
    "misalign": (lambda v: v >= 0, "a magnitude >= 0"),
    "realworld": (lambda v: 0 <= v <= 1, "a level in [0, 1]"),
}


def degrade_level_problem(op: str, level: float) -> str | None:
    """Why (op, level) is not a valid degradation, or None if it is."""
    if op not in DEGRADE_LEVELS:
        return f"unknown degradation {op!r} (one of {', '.join(DEGRADE_OPS)})"
    ok, what = DEGRADE_LEVELS[op]
    return None if ok(level) else f"{op} level must be {what}, got {level:g}"


def derive_seed(seed: int, *parts) -> int:
    """31-bit seed from a base seed and names (stable across runs and machines)."""
    h = hashlib.sha256("/".join(map(str, (int(seed),) + parts)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def parse_degrade(spec: str) -> tuple[str, float]:
    """'jpeg-10' -> ('jpeg', 10.0); 'none' -> ('none', 0.0); StudyError for a bad op or level."""
    m = DEGRADE_RE.match(str(spec))
    if not m:
        raise StudyError(f"degrade {spec!r} is not 'none' or '<op>-<level>' (e.g. jpeg-10)")
    if spec == "none":
        return "none", 0.0
    op, level = m.group("op"), float(m.group("level"))
    problem = degrade_level_problem(op, level)
    if problem:
        raise StudyError(f"degrade {spec!r}: {problem}")
    return op, level


@dataclass(frozen=True)
class Condition:
    """One recipe from input image to inversion; ``id`` names its folders."""

    generator: str
    alignment: str
    size: int
    degrade: str
    degrade_order: str
    loss: str
    latent: str

    @property
    def id(self) -> str:
        deg = self.degrade
        if deg != "none":
            deg += "-pre" if self.degrade_order == "before_align" else "-post"
        return f"{self.generator}_{self.alignment}-{self.size}_{deg}_{self.loss}_{self.latent}"

    @property
    def pre(self) -> str:
        """What the aligned image was made from: 'clean', or the degradation applied before."""
        return self.degrade if (self.degrade != "none" and self.degrade_order == "before_align") else "clean"

    def factors(self) -> dict:
        return {k: getattr(self, k) for k in FACTORS}


@dataclass
class Level:
    label: str
    condition: Condition


@dataclass
class Question:
    name: str
    title: str
    factor: str
    sources: list[str]
    levels: list[Level]
    yaw_bins: list[float] | None = None


@dataclass
class Source:
    name: str
    kind: str  # folder | video | samples | bundled | bundled_video
    spec: dict
    aligned: bool = False


class Study:
    """The expanded study: sources, conditions, questions; path builders for the DAG."""

    def __init__(self, config: dict):
        self.config = config
        self.seed = int(config.get("seed", 0))
        self.weights = dict(config.get("weights") or {})
        self.generators = [n for n, w in self.weights.items() if w.get("role", "generator") == "generator"]
        self.identity = (config.get("identity") or {}).get("weights")
        if self.identity is not None and self.weights.get(self.identity, {}).get("role") != "identity":
            raise StudyError(f"identity.weights: {self.identity!r} is not a weights entry with role: identity")
        self.sources = {n: self._source(n, s) for n, s in (config.get("sources") or {}).items()}
        self._folder_cache: dict[str, dict[str, Path]] = {}
        base = dict(config.get("baseline") or {})
        self.baseline = self._condition(base, "baseline")
        self.questions: dict[str, Question] = {}
        for qname, q in (config.get("questions") or {}).items():
            self.questions[qname] = self._question(qname, q)
        self.conditions: dict[str, Condition] = {}
        for q in self.questions.values():
            for lv in q.levels:
                self.conditions.setdefault(lv.condition.id, lv.condition)
        if not self.conditions:
            self.conditions[self.baseline.id] = self.baseline

    # ---- construction
    def _source(self, name: str, spec: dict) -> Source:
        if not NAME_RE.match(name):
            raise StudyError(f"sources.{name}: names use letters, digits and '-' only")
        kind = spec.get("kind")
        if kind not in ("folder", "video", "samples", "bundled", "bundled_video"):
            raise StudyError(f"sources.{name}.kind: unknown kind {kind!r}")
        if kind == "samples" and spec.get("generator") not in self.generators:
            raise StudyError(f"sources.{name}.generator: {spec.get('generator')!r} is not in weights")
        aligned = bool(spec.get("aligned", kind == "samples"))
        return Source(name, kind, dict(spec), aligned)

    def _condition(self, spec: dict, where: str) -> Condition:
        missing = [k for k in FACTORS if k not in spec]
        if missing:
            raise StudyError(f"{where}: missing factor(s) {', '.join(missing)}")
        unknown = [k for k in spec if k not in FACTORS]
        if unknown:
            raise StudyError(f"{where}: unknown factor(s) {', '.join(unknown)} (factors: {', '.join(FACTORS)})")
        if spec["generator"] not in self.generators:
            raise StudyError(f"{where}.generator: {spec['generator']!r} is not a generator in weights")
        if "id" in str(spec.get("loss", "")).split("+") and self.identity is None:
            raise StudyError(f"{where}.loss: {spec['loss']!r} needs an identity network (set identity.weights)")
        checks = {"alignment": ALIGNMENTS, "degrade_order": DEGRADE_ORDERS, "latent": LATENTS, "loss": LOSSES}
        for k, allowed in checks.items():
            if spec[k] not in allowed:
                raise StudyError(f"{where}.{k}: {spec[k]!r} is not one of {', '.join(allowed)}")
        parse_degrade(spec["degrade"])
        size = int(spec["size"])
        if size < 8:
            raise StudyError(f"{where}.size: {size} is too small")
        return Condition(
            generator=str(spec["generator"]),
            alignment=str(spec["alignment"]),
            size=size,
            degrade=str(spec["degrade"]),
            degrade_order=str(spec["degrade_order"]),
            loss=str(spec["loss"]),
            latent=str(spec["latent"]),
        )

    def _question(self, name: str, q: dict) -> Question:
        where = f"questions.{name}"
        sources = list(q.get("sources") or [])
        for s in sources:
            if s not in self.sources:
                raise StudyError(f"{where}.sources: {s!r} is not a configured source")
        if not sources:
            raise StudyError(f"{where}.sources: list at least one source")
        levels = []
        if "yaw_bins" in q:
            bins = [float(b) for b in q["yaw_bins"]]
            if len(bins) < 2 or bins != sorted(bins):
                raise StudyError(f"{where}.yaw_bins: need at least two increasing edges")
            levels = [Level("baseline", self.baseline)]
            return Question(name, q.get("title", name), q.get("factor", "|yaw| (degrees)"), sources, levels, yaw_bins=bins)
        for i, lv in enumerate(q.get("levels") or []):
            spec = self.baseline.factors()
            spec.update(lv.get("set") or {})
            levels.append(Level(str(lv.get("label", i)), self._condition(spec, f"{where}.levels[{i}]")))
        if not levels:
            raise StudyError(f"{where}: give 'levels' (or 'yaw_bins')")
        labels = [lv.label for lv in levels]
        if len(set(labels)) != len(labels):
            raise StudyError(f"{where}.levels: labels must be unique")
        return Question(name, q.get("title", name), q.get("factor", name), sources, levels)

    # ---- facts for the DAG
    def condition_sources(self, cid: str) -> list[str]:
        """Sources whose items are projected under condition ``cid`` (union over questions)."""
        out: list[str] = []
        for q in self.questions.values():
            if any(lv.condition.id == cid for lv in q.levels):
                out += [s for s in q.sources if s not in out]
        return out or list(self.sources)

    def stand_in_weights(self, name: str) -> bool:
        return self.weights[name].get("kind") == "stand_in"

    def stand_in_reasons(self) -> list[str]:
        """Why the study's numbers are not findings: each stand-in network it uses (empty for a real study)."""
        reasons = [f"stand-in generator '{g}' (tiny, random)" for g in sorted({c.generator for c in self.conditions.values()})
                   if self.stand_in_weights(g)]
        if (self.config.get("lpips") or {}).get("backbone") == "random":
            reasons.append("LPIPS with a random backbone (not LPIPS)")
        if self.identity and self.stand_in_weights(self.identity):
            reasons.append(f"stand-in identity network '{self.identity}' (small, random)")
        return reasons

    def is_stand_in(self) -> bool:
        """True when any network used is a stand-in (generator, identity, LPIPS backbone): numbers are not findings."""
        return bool(self.stand_in_reasons())

    def lpips_backbone_entry(self, net: str) -> str | None:
        """Weights entry (role lpips) holding torchvision's backbone for LPIPS-net; None with a random backbone."""
        if (self.config.get("lpips") or {}).get("backbone") == "random":
            return None
        want = LPIPS_BACKBONE_FILES[net]
        for name, w in self.weights.items():
            if w.get("role") == "lpips" and w.get("torch_hub") == want:
                return name
        raise StudyError(f"weights: no entry with role: lpips and torch_hub: {want} (needed by LPIPS-{net} with a pretrained backbone)")

    def lpips_backbone_file(self, net: str) -> str | None:
        """Path of the LPIPS backbone file under TORCH_HOME, or None with a random backbone."""
        name = self.lpips_backbone_entry(net)
        return HUB_FILE.format(hubfile=self.weights[name]["torch_hub"]) if name else None

    def degrade_ids(self) -> list[str]:
        return sorted({c.degrade for c in self.conditions.values() if c.degrade != "none"})

    def static_items(self, source: str) -> list[str]:
        """Items of a source known without running anything (not video frames)."""
        src = self.sources[source]
        if src.kind == "samples":
            return [f"s{i:04d}" for i in range(int(src.spec.get("n", 1)))]
        if src.kind == "bundled":
            return list(src.spec.get("photos") or [])
        if src.kind == "folder":
            return sorted(self.folder_files(source))
        raise StudyError(f"source {source!r} of kind {src.kind!r} has items only after frame extraction")

    def folder_files(self, source: str) -> dict[str, Path]:
        """{item: file} of a folder source, listed once per Study."""
        if source not in self._folder_cache:
            self._folder_cache[source] = folder_items(Path(self.sources[source].spec["path"]))
        return self._folder_cache[source]

    def item_seed(self, *parts) -> int:
        """A 31-bit seed derived from the study seed and the given names."""
        return derive_seed(self.seed, *parts)

    # ---- path builders (item folders)
    def align_mode(self, source: str, alignment: str) -> str:
        """The align CLI mode for a source: pre-aligned sources are only resized under 'ffhq'."""
        return "resize" if (alignment == "ffhq" and self.sources[source].aligned) else alignment

    def target_dir(self, c: Condition, source: str, item: str) -> str:
        """Folder of the image the projector fits for condition c."""
        if c.degrade != "none" and c.degrade_order == "after_align":
            return DEGRADED_ALIGNED.format(alignment=c.alignment, size=c.size, degrade=c.degrade, source=source, item=item)
        return ALIGNED.format(alignment=c.alignment, size=c.size, pre=c.pre, source=source, item=item)

    def clean_dir(self, c: Condition, source: str, item: str) -> str:
        """Folder of the clean reference: same alignment, no degradation, generator resolution."""
        size = self.generator_resolution(c.generator)
        return ALIGNED.format(alignment=c.alignment, size=size, pre="clean", source=source, item=item)

    def generator_resolution(self, name: str) -> int:
        w = self.weights[name]
        if "resolution" not in w:
            raise StudyError(f"weights.{name}.resolution: needed to know the generator's output size")
        return int(w["resolution"])

    def projected_dir(self, cid: str, source: str, item: str) -> str:
        return PROJECTED.format(condition=cid, source=source, item=item)


def folder_items(folder: Path) -> dict[str, Path]:
    """Image-like files in a folder keyed by a path-safe item name (stem, made unique)."""
    items: dict[str, Path] = {}
    if not folder.is_dir():
        return items
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", p.stem).strip("-.") or "image"
            base, k = name, 2
            while name in items:
                name = f"{base}-{k}"
                k += 1
            items[name] = p
    return items


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".heic")
