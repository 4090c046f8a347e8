import pytest

from ._helpers import register_test_components


@pytest.fixture
def test_components(monkeypatch):
    """The engine's test strategies and dataset, registered for one test only."""
    register_test_components(monkeypatch)
