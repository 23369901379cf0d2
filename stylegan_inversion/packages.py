"""Files that ship inside installed packages (dlib models, bundled photos), found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import UserError


class MissingPackageError(UserError, RuntimeError):
    """A package whose files the study needs is not installed."""


def package_dir(name: str, pip_name: str | None = None) -> Path:
    """Folder of an installed package, located without importing it (some fail to import on new setuptools)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(f"package {pip_name or name} is not installed (pip install {pip_name or name})")
    return Path(list(spec.submodule_search_locations)[0])


def face_recognition_models_dir() -> Path:
    """Folder of the dlib model files shipped by the face-recognition-models package."""
    return package_dir("face_recognition_models", "face-recognition-models") / "models"
