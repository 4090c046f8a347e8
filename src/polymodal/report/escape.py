"""User-provided text (class names, column names, file names, run names) made safe to put into Markdown.

A Markdown renderer passes raw HTML through: a class named ``<script>alert(1)</script>`` written as it is
into ``report.md`` or ``data_check.md`` becomes a script in any page that shows the file. :func:`md_text`
neutralises what Markdown turns into markup that can carry code or links (HTML tags, comments and
declarations, autolinks, character references, inline links and images) and leaves ordinary text as it
is (``a -> b``, ``< 0.5``, ``x > 0``, ``R&D``), so the same text still reads well in a terminal. A table
cell's ``|`` is escaped by the table writer (:func:`polymodal.report.table.cell`); :func:`md_code` makes a
code span that no backtick in the text can close early.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # what may open an HTML tag, comment, declaration or autolink
_REFERENCE = re.compile(r"&(?=#?[A-Za-z0-9]+;)")  # a character reference such as &lt; or &#60;
_LINK = re.compile(r"\]\(")  # the middle of an inline link or image: [text](url)


def md_text(text: object) -> str:
    """``text`` as Markdown that renders as that text: ``<`` before a letter, ``/``, ``!`` or ``?`` becomes
    ``&lt;``, ``&`` that starts a character reference ``&amp;``, and ``](`` ``]\\(``; the rest is kept."""
    s = _REFERENCE.sub("&amp;", str(text))
    s = _TAG.sub("&lt;", s)
    return _LINK.sub(r"]\\(", s)


def md_code(text: object) -> str:
    """``text`` as a Markdown code span (nothing inside is markup), fenced by more backticks than any run
    of backticks in it."""
    s = str(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"
