import pytest

from attnlib import html_table


def test_html_table_rows_and_groups():
    html = html_table(["a", "b", "c"], [[1, "x", 2.5]], groups=[("first", 1), ("rest", 2)]).data
    assert "<th colspan='1'>first</th><th colspan='2'>rest</th>" in html
    assert "<tr><th>a</th><th>b</th><th>c</th></tr>" in html
    assert "<tr><td>1</td><td>x</td><td>2.5</td></tr>" in html


@pytest.mark.parametrize("rows, groups", [([[1, 2]], ()), ([[1, 2, 3]], [("g", 2)])])
def test_html_table_rejects_ragged_rows_and_groups(rows, groups):
    with pytest.raises(ValueError, match="must span the 3 columns"):
        html_table(["a", "b", "c"], rows, groups=groups)
