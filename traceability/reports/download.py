"""Stage 3 (reports): how a report and its bundle are downloaded (API and web alike): their file names and
the headers naming the bundle that proves a report."""

from __future__ import annotations

import re
from urllib.parse import quote

from traceability.reports.proof import BUNDLE_SUFFIX, Proof
from traceability.web.paths import quote_id

BUNDLE_MEDIA_TYPE = "application/json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UNSAFE_UNICODE = re.compile(r"[^\w.-]+")


def file_stem(lot_id: str, *, ascii_only: bool = True) -> str:
    """A file name for the lot's report: its id with every character a file name may not hold replaced
    (and, ``ascii_only``, every non-ASCII one, which a header's plain ``filename`` cannot carry)."""
    unsafe = _UNSAFE if ascii_only else _UNSAFE_UNICODE
    return "report-" + unsafe.sub("_", lot_id).strip("_.-")[:120]


def report_file_name(lot_id: str, fmt: str, *, ascii_only: bool = True) -> str:
    return f"{file_stem(lot_id, ascii_only=ascii_only)}.{fmt}"


def bundle_file_name(lot_id: str, *, ascii_only: bool = True) -> str:
    return file_stem(lot_id, ascii_only=ascii_only) + BUNDLE_SUFFIX


def bundle_path(lot_id: str, head_seq: int, *, prefix: str = "") -> str:
    """The path of the bundle a report states (its lot, proven up to the report's signed head), under the
    app's ``prefix`` (the API's routes at "", the web's at ``/ui``)."""
    return f"{prefix}/trace/{quote_id(lot_id)}/bundle.json?seq={head_seq}"


def _attachment(filename: str, unicode_name: str) -> str:
    """``Content-Disposition``: the ASCII name, and (RFC 6266) the UTF-8 one when it differs."""
    if unicode_name == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(unicode_name, safe='')}"


def report_headers(proof: Proof, fmt: str, *, prefix: str = "") -> dict[str, str]:
    """A report download's headers: its file name (format ``fmt``), the sha256 of its bundle and a link to
    fetch that bundle byte for byte (at the report's signed head)."""
    link = bundle_path(proof.lot_id, proof.head_seq, prefix=prefix)
    return {
        "Content-Disposition": _attachment(
            report_file_name(proof.lot_id, fmt), report_file_name(proof.lot_id, fmt, ascii_only=False)
        ),
        "X-Evidence-Bundle-Sha256": proof.bundle_sha256,
        "Link": f'<{link}>; rel="describedby"; type="{BUNDLE_MEDIA_TYPE}"',
        "Cache-Control": "no-store",
    }


def bundle_headers(proof: Proof) -> dict[str, str]:
    """A bundle download's headers."""
    return {
        "Content-Disposition": _attachment(
            bundle_file_name(proof.lot_id), bundle_file_name(proof.lot_id, ascii_only=False)
        ),
        "X-Evidence-Bundle-Sha256": proof.bundle_sha256,
        "Cache-Control": "no-store",
    }
