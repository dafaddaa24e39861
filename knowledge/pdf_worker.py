"""Reads one PDF from stdin and writes {"title", "body"} or {"error"} as JSON to stdout.

Run by knowledge.extract in a child process with memory and CPU limits: a hostile PDF (a
decompression bomb, a parser loop) costs that child, never the web process or the worker.
It imports pypdf only, so that it starts quickly.
"""

from __future__ import annotations

import io
import json
import sys


def main() -> int:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    data = sys.stdin.buffer.read()
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        json.dump({"error": str(exc)[:300]}, sys.stdout)
        return 0
    body = "\n\n".join(page.strip() for page in pages if page.strip())
    json.dump({"title": str(title), "body": body}, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
