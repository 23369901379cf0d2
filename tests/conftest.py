"""Fixtures shared by several test files."""

import pytest

from stylegan_inversion.download import MIRROR_ENV


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 whose behaviour the test controls (see test_download.local_server)."""
    from test_download import local_server

    with local_server() as state:
        yield state


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    """No test sees a mirror folder set in the developer's environment."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
