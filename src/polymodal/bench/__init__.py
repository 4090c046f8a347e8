"""Benchmarks: results files (JSON twin + Markdown table) shared by every benchmark script."""

from polymodal.bench.results import ResultRow, read_results, render_markdown, write_results

__all__ = ["ResultRow", "read_results", "render_markdown", "write_results"]
