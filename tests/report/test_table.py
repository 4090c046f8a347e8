import pytest

from polymodal.report.table import markdown_table


def test_markdown_table_aligns_and_escapes():
    lines = markdown_table(["name", "value"], [["a|b", 1], ["multi\nline", 2.5]])
    assert lines == ["| name | value |", "|---|---:|", "| a\\|b | 1 |", "| multi line | 2.5 |"]
    assert markdown_table(["a", "b", "c"], [], "lrl")[1] == "|---|---:|---|"


def test_markdown_table_errors():
    with pytest.raises(ValueError, match="align 'lx'"):
        markdown_table(["a", "b"], [], "lx")
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        markdown_table(["a", "b"], [[1, 2], [3]])
