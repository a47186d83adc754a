"""Text that fits 100 columns (results/text.py): parts are never cut, continuation lines
are indented, and rows too wide for one line keep their columns aligned."""

from __future__ import annotations

from npsim.results.text import shorten, wrap, wrapped_rows


def test_shorten_keeps_start_and_end() -> None:
    assert shorten("frontend-7d9f8b6c4-x2x9z", 100) == "frontend-7d9f8b6c4-x2x9z"
    short = shorten("a" * 30 + "b" * 30, 20)
    assert len(short) == 20 and short.startswith("a" * 8) and short.endswith("b" * 9)


def test_wrap_continues_a_long_line_under_its_head() -> None:
    parts = ["p50 4.522ms (95% CI 4.473ms..4.57ms)", "p95 14.67ms (95% CI 14.08ms..15.25ms)",
             "p99 21.12ms (95% CI 20.2ms..22.04ms)"]
    lines = wrap("users see  ", parts)
    assert lines == ["users see  " + "  ".join(parts[:2]), " " * 11 + parts[2]]
    assert wrap("users see  ", parts[:2]) == ["users see  " + "  ".join(parts[:2])]
    long = "x" * 120  # a part wider than the line stays whole
    assert wrap("head ", [long]) == ["head " + long]


def test_wrapped_rows_break_every_row_at_the_same_column() -> None:
    rows = [["a", "1.0 req/s", "p50 " + "x" * 30, "cross-node 5.0%", "failed 0.0%"],
            ["longer-name", "10.0 req/s", "p50 " + "y" * 30, "cross-node 50.0%",
             "failed 2.0%"]]
    out = wrapped_rows(rows, "lrlll", width=70, indent="  ",
                       tails=[[], ["reset: 3", "refused: 1"]])
    assert all(len(line) <= 70 for lines in out for line in lines)
    assert [len(lines) for lines in out] == [2, 2]
    assert out[0][1].index("cross-node") == out[1][1].index("cross-node") == 2 + 11 + 2
    assert out[1][1].endswith("failed 2.0%  reset: 3  refused: 1")
    assert out[0][0].index("1.0 req/s") == out[1][0].index("10.0 req/s") + 1  # right-aligned
