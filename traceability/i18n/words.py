"""Stage 3 (faces and reports): the words the trace page and the reports show for stored codes, and how
both write numbers and durations; translated with the viewer's ``_``."""

from __future__ import annotations

from traceability.i18n import Gettext


def N_(message: str) -> str:  # noqa: N802 (the name gettext extractors know)
    """Marks a message for extraction; translated where it is shown."""
    return message


BONDED = {"bonded": N_("bonded"), "released": N_("released"), "domestic": N_("domestic")}
# The steps of a batch's import flow (rules.engine.flow), as the trace page and the reports name them.
IMPORT_STEPS = {
    "discharge": N_("discharge"),
    "inspection": N_("inspection"),
    "disinfection": N_("disinfection"),
    "trace_code": N_("trace code issued"),
    "entry": N_("first-line entry"),
    "release": N_("second-line release"),
    "onward": N_("onward"),
}
BIZ_STEPS = {
    "commissioning": N_("commissioning"),
    "packing": N_("packing"),
    "storing": N_("storing"),
    "loading": N_("loading"),
    "shipping": N_("shipping"),
    "departing": N_("departing"),
    "arriving": N_("arriving"),
    "unloading": N_("unloading"),
    "receiving": N_("receiving"),
    "inspecting": N_("inspecting"),
    "holding": N_("holding"),
    "stuffing": N_("stuffing"),
    "unstuffing": N_("unstuffing"),
}
# A shipment's states (traceability migration 0021) and a leg's modes (registry shipment_leg.mode).
SHIPMENT_STATES = {
    "planned": N_("planned"),
    "in_transit": N_("in transit"),
    "arrived": N_("arrived"),
    "delivered": N_("delivered"),
    "closed": N_("closed"),
}
TRANSPORT_MODES = {"sea": N_("sea"), "rail": N_("rail"), "road": N_("road"), "cold_store": N_("cold store")}
# The durations' messages (``duration`` fills them in).
DURATION_MSGIDS = ("%(h)d h %(m)d min", "%(m)d min", "%(m)d min %(s)d s", "%(s)d s")


def word(table: dict[str, str], code: str | None, _: Gettext) -> str:
    """The translated word of a stored code (the code itself when there is no word for it; '–' for none)."""
    if code is None:
        return "–"
    return _(table[code]) if code in table else code


def number(v: float | None) -> str:
    """A measured number as written: at most two decimals, no trailing zeros; '–' for none."""
    if v is None:
        return "–"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def duration(seconds: float | None, _: Gettext) -> str:
    """``1 h 5 min``, ``12 min``, ``3 min 20 s``, ``40 s`` in the viewer's language; '–' for none."""
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return _("%(h)d h %(m)d min") % {"h": h, "m": m}
    if m and not sec:
        return _("%(m)d min") % {"m": m}
    if m:
        return _("%(m)d min %(s)d s") % {"m": m, "s": sec}
    return _("%(s)d s") % {"s": sec}
