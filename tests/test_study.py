"""The study design: config validation, condition expansion and the paths that join stages."""

import pytest

from helpers import demo_config, real_config
from stylegan_inversion.config import ConfigError, validate_config
from stylegan_inversion.study import ALIGNED, DEGRADED_ALIGNED, Study, StudyError, folder_items, parse_degrade


@pytest.mark.parametrize("make", [demo_config, real_config])
def test_shipped_configs_validate_and_expand(make):
    cfg = make()
    validate_config(cfg)
    study = Study(cfg)
    assert study.baseline.id in study.conditions
    # every question level maps onto a known condition and the baseline is shared, not duplicated
    ids = [lv.condition.id for q in study.questions.values() for lv in q.levels]
    assert set(ids) == set(study.conditions)
    assert ids.count(study.baseline.id) > 1


def test_demo_is_stand_in_and_real_study_is_not():
    assert Study(demo_config()).is_stand_in()
    assert not Study(real_config()).is_stand_in()


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c.update(bogus=1), "(top level)"),
        (lambda c: c["baseline"].update(loss="l1"), "baseline"),
        (lambda c: c["project"].update(steps=0), "project.steps"),
        (lambda c: c["sources"]["photos"].update(kind="ftp"), "sources.photos.kind"),
        (lambda c: c["questions"]["jpeg"]["levels"][1]["set"].update(degrade="jpeg-ten"), "questions.jpeg.levels.1.set.degrade"),
        (lambda c: c.update(device="gpu0"), "device"),
    ],
)
def test_bad_config_names_the_key(edit, key):
    cfg = demo_config()
    edit(cfg)
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert key in str(e.value)


def test_study_errors_name_the_place():
    cfg = demo_config()
    cfg["questions"]["jpeg"]["sources"] = ["nowhere"]
    with pytest.raises(StudyError, match="questions.jpeg.sources"):
        Study(cfg)
    cfg = demo_config()
    cfg["baseline"]["generator"] = "ffhq9000"
    with pytest.raises(StudyError, match="baseline.generator"):
        Study(cfg)
    cfg = demo_config()
    cfg["questions"]["jpeg"]["levels"].append({"label": "clean"})
    with pytest.raises(StudyError, match="unique"):
        Study(cfg)


def test_parse_degrade():
    assert parse_degrade("jpeg-10") == ("jpeg", 10.0)
    assert parse_degrade("misalign-0.05") == ("misalign", 0.05)
    assert parse_degrade("none") == ("none", 0.0)
    for bad in ("jpeg", "sharpen-2", "blur-x", "jpeg--1"):
        with pytest.raises(StudyError):
            parse_degrade(bad)


def test_condition_paths_follow_degrade_order():
    study = Study(demo_config())
    after = next(c for c in study.conditions.values() if c.degrade == "jpeg-5")
    before = next(c for c in study.conditions.values() if c.degrade_order == "before_align")
    assert study.target_dir(after, "photos", "t1") == DEGRADED_ALIGNED.format(alignment="ffhq", size=32, degrade="jpeg-5", source="photos", item="t1")
    assert study.target_dir(before, "photos", "t1") == ALIGNED.format(alignment="ffhq", size=32, pre=before.degrade, source="photos", item="t1")
    assert before.pre == before.degrade and after.pre == "clean"
    # the clean reference is aligned the same way, undegraded, at the generator's resolution
    small = next(c for c in study.conditions.values() if c.size == 16)
    assert study.clean_dir(small, "photos", "t1") == ALIGNED.format(alignment="ffhq", size=32, pre="clean", source="photos", item="t1")
    assert after.id != before.id and len({c.id for c in study.conditions.values()}) == len(study.conditions)


def test_pre_aligned_sources_are_only_resized():
    study = Study(demo_config())
    assert study.align_mode("samples", "ffhq") == "resize"
    assert study.align_mode("photos", "ffhq") == "ffhq"
    assert study.align_mode("samples", "center") == "center"


def test_condition_sources_union_over_questions():
    study = Study(demo_config())
    assert set(study.condition_sources(study.baseline.id)) == {"photos", "clip", "samples"}
    w_only = next(c for c in study.conditions.values() if c.latent == "w")
    assert study.condition_sources(w_only.id) == ["samples"]


def test_static_items_and_folder_names(tmp_path):
    (tmp_path / "a b.JPG").write_bytes(b"x")
    (tmp_path / "a_b.png").write_bytes(b"x")
    (tmp_path / "a b.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    items = folder_items(tmp_path)
    assert sorted(items) == ["a-b", "a-b-2", "a_b"]
    assert all(p.suffix.lower() in (".jpg", ".png") for p in items.values())
    study = Study(demo_config())
    assert study.static_items("samples") == ["s0000", "s0001", "s0002"]
    with pytest.raises(StudyError):
        study.static_items("clip")


def test_item_seed_is_stable_and_distinct():
    a, b = Study(demo_config()), Study(demo_config())
    assert a.item_seed("sample", "s", "x") == b.item_seed("sample", "s", "x")
    assert a.item_seed("sample", "s", "x") != a.item_seed("sample", "s", "y")
    cfg = demo_config()
    cfg["seed"] = 1
    assert Study(cfg).item_seed("sample", "s", "x") != a.item_seed("sample", "s", "x")


@pytest.mark.parametrize("spec", ["jpeg-0", "jpeg-101", "realworld-2", "downscale-0.5"])
def test_out_of_range_degradations_are_refused_when_the_config_is_read(spec):
    cfg = demo_config()
    cfg["questions"]["jpeg"]["levels"][1]["set"]["degrade"] = spec
    with pytest.raises(StudyError, match="level must be"):
        Study(cfg)
