"""Stage 3 (faces): where the web's pages live (``/ui/...``), dependency-free so the reports may link them."""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "/ui"


def quote_id(ident: str) -> str:
    """An identifier as one path segment run (``:`` kept, ``/``, ``?``, ``#``, ``%`` escaped)."""
    return quote(ident, safe=":@!$&'()*+,;=-._~")


def trace_url(ident: str) -> str:
    """The path of ``ident``'s trace page."""
    return f"{PREFIX}/trace/{quote_id(ident)}"


def trace_page_url(base_url: str, ident: str) -> str:
    """The URL of ``ident``'s trace page under ``base_url`` (the PDF's QR code points there)."""
    return base_url.rstrip("/") + trace_url(ident)


def scan_path(code: str) -> str:
    """The path of the public scan page of a trace code (or any code the scan page reads)."""
    return f"/scan/{quote_id(code)}"


def scan_page_url(base_url: str, code: str) -> str:
    """The URL of a code's public scan page under ``base_url`` (the PDF prints it as a QR code)."""
    return base_url.rstrip("/") + scan_path(code)
