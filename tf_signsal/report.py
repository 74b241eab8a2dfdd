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
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
.note { color: #555; font-size: 0.9em; }
"""


class HtmlReport:
    """Builds one HTML page piece by piece; `html()` returns it, `save(path)` writes it.

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
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        """A section heading."""
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        """A paragraph of text; `note` makes it small and grey."""
        css = ' class="note"' if note else ""
        self._parts.append(f"<p{css}>{html.escape(text)}</p>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Numbers are shown with 3 decimals, everything else as text."""

        def cell(value: Any) -> str:
            return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))

        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, png: bytes, caption: str) -> None:
        """A PNG image (its bytes, embedded in the page) with a caption."""
        data = base64.b64encode(png).decode("ascii")
        self._parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>"
        )

    def html(self) -> str:
        """The whole page."""
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>\n"
            "<body>\n" + "\n".join(self._parts) + "\n</body></html>\n"
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
