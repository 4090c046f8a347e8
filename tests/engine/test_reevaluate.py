import pytest

from polymodal.engine import reevaluate_run


def test_reevaluate_needs_a_finished_run_and_a_new_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        reevaluate_run(tmp_path / "nothing", tmp_path / "out", [])
    base = tmp_path / "base"
    base.mkdir()
    for f in ("config.yaml", "results.json", "provenance.json"):
        (base / f).write_text("{}")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="choose another folder"):
        reevaluate_run(base, tmp_path / "out", [])
