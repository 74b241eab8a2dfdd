"""A self-contained HTML page: headings, text, tables and PNG figures embedded as base64."""

from __future__ import annotations

import base64
import html
import importlib
import os
import platform
from collections.abc import Sequence
from typing import Any

from tf_signsal._io import write_atomic

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px;
       margin: 1.5em auto; padding: 0 1.5em; color: #222; line-height: 1.45; text-align: left; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p { max-width: 75em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
figure { margin: 0.8em 0 2em; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { margin-top: 0.3em; }
.note { color: #555; font-size: 0.9em; }
nav.contents { background: #f6f6f6; border: 1px solid #ddd; padding: 0.4em 1.2em; margin: 1em 0;
               display: inline-block; }
nav.contents h2 { font-size: 1em; margin: 0.4em 0; border: none; }
nav.contents ol { margin: 0.2em 0 0.5em; padding-left: 1.4em; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  figure, table { break-inside: avoid; }
  figure img { max-height: 23cm; width: auto; }
  nav.contents { display: block; }
  a { color: inherit; text-decoration: none; }
}
"""


class HtmlReport:
    """Builds one HTML page piece by piece; `html()` returns it, `save(path)` writes it.

    The page uses the width of the screen (up to 1200 px) and prints to PDF as it
    shows: text left-aligned; figures at their size in pixels, as wide as the text
    at most (save them at 150 dpi to fill it; printed, a page tall at most); numbers
    right-aligned in tables; and a table of contents of the headings after the
    text that comes before the first of them.

    Args:
        title: the page's title and first heading.

    Example:
        >>> page = HtmlReport("Demo")
        >>> page.heading("Maps"); page.figure(png_bytes, "the maps")
        >>> page.table(["map", "score"], [["positive", 0.61]])
        >>> page.save("report.html")
    """

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []
        self._headings: list[tuple[str, str]] = []  # (anchor, text)

    def heading(self, text: str) -> None:
        """A section heading, listed in the table of contents."""
        anchor = f"section-{len(self._headings) + 1}"
        self._headings.append((anchor, text))
        self._parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')

    def paragraph(self, text: str, note: bool = False) -> None:
        """A paragraph of text; `note` makes it small and grey."""
        css = ' class="note"' if note else ""
        self._parts.append(f"<p{css}>{html.escape(text)}</p>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Numbers are shown with 3 decimals (floats) and right-aligned, everything else
        as left-aligned text."""

        def cell(value: Any) -> str:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"<td>{html.escape(str(value))}</td>"
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            return f'<td class="number">{shown}</td>'

        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, png: bytes, caption: str) -> None:
        """A PNG image (its bytes, embedded in the page) with a caption."""
        data = base64.b64encode(png).decode("ascii")
        self._parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>"
        )

    def _contents(self) -> str:
        if not self._headings:
            return ""
        items = "".join(
            f'<li><a href="#{anchor}">{html.escape(text)}</a></li>'
            for anchor, text in self._headings
        )
        return f'<nav class="contents"><h2>Contents</h2><ol>{items}</ol></nav>'

    def html(self) -> str:
        """The whole page."""
        first = next(
            (i for i, part in enumerate(self._parts) if part.startswith("<h2 ")), len(self._parts)
        )
        parts = [
            f"<h1>{html.escape(self.title)}</h1>", *self._parts[:first], self._contents(),
            *self._parts[first:],
        ]
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>\n"
            "<body>\n" + "\n".join(p for p in parts if p) + "\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the page (UTF-8) to `path`, atomically."""
        write_atomic(path, self.html().encode())


def versions() -> dict[str, str]:
    """The versions a result depends on: tf_signsal, TensorFlow, Keras, NumPy and Python.

    Example:
        >>> versions()["tf_signsal"]
        '0.1.0'
    """
    from tf_signsal import __version__

    found = {"tf_signsal": __version__}
    for name in ("tensorflow", "keras", "numpy"):
        try:
            found[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):  # pragma: no cover - all are dependencies
            found[name] = "absent"
    found["python"] = platform.python_version()
    return found
