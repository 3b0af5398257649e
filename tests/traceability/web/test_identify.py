"""Tests: the search box's reading of GS1 scans (element strings, raw FNC1 scans, Digital Link) and text."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from traceability.epcis.digital_link import check_digit, epc_to_digital_link
from traceability.web.identify import GS, hri, identify, sscc_epc

# GS1 company prefixes biip knows the length of (GS1 China 690-699, GS1 Thailand 885, GS1 US 0xx).
PREFIXES = st.sampled_from(["6901234", "6923456", "8850000", "0614141", "6955555"])
# AI 10 / 21 values: GS1 character set 82, without the parentheses an element string cannot carry.
VALUE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-./_"
BATCHES = st.text(alphabet=VALUE_CHARS, min_size=1, max_size=20)
SYMBOLOGIES = st.sampled_from(["]d2", "]C1", "]Q3", "]e0"])


@st.composite
def gtins(draw: st.DrawFn) -> str:
    prefix = draw(PREFIXES)
    indicator = draw(st.sampled_from("012345678"))
    ref = draw(st.text(alphabet="0123456789", min_size=12 - len(prefix), max_size=12 - len(prefix)))
    body = indicator + prefix + ref
    return body + check_digit(body)


@given(gtins(), BATCHES)
def test_element_string_round_trips(gtin: str, batch: str) -> None:
    found = identify(f"(01){gtin}(10){batch}")
    assert found.is_gs1
    assert (found.gtin, found.batch) == (gtin, batch)
    assert hri(found.elements) == f"(01){gtin}(10){batch}"


@given(gtins(), BATCHES, st.none() | BATCHES, SYMBOLOGIES)
def test_raw_fnc1_scan_reads_as_its_element_string(
    gtin: str, batch: str, serial: str | None, symbology: str
) -> None:
    raw = f"{symbology}01{gtin}10{batch}" + ("" if serial is None else f"{GS}21{serial}")
    human = f"(01){gtin}(10){batch}" + ("" if serial is None else f"(21){serial}")
    assert identify(raw).elements == identify(human).elements
    assert identify(raw).epcs() == identify(human).epcs()


@given(gtins(), BATCHES)
def test_digital_link_reads_as_its_element_string(gtin: str, batch: str) -> None:
    link = f"https://id.gs1.org/01/{gtin}/10/{quote(batch, safe='')}"
    assert identify(link).elements == identify(f"(01){gtin}(10){batch}").elements


@given(gtins(), BATCHES)
def test_the_lgtin_names_the_same_gtin_and_batch(gtin: str, batch: str) -> None:
    """The EPC URI made from a scan converts back (through the ledger's own converter) to the scan's keys."""
    (lgtin,) = identify(f"(01){gtin}(10){batch}").epcs()
    assert lgtin.startswith("urn:epc:class:lgtin:")
    link = epc_to_digital_link(lgtin)
    assert link is not None
    assert identify(link).elements == (("01", gtin), ("10", batch))


def test_the_demo_lot_scanned() -> None:
    lot = "urn:epc:class:lgtin:6901234.012345.QZ2611A"
    assert identify("(01)06901234123456(10)QZ2611A").epcs() == [lot]
    assert identify(f"]d2010690123412345610QZ2611A{GS}").epcs() == [lot]
    assert identify("]C1010690123412345610QZ2611A\u241d17261231").epcs() == [lot]
    assert identify("https://example.com/01/06901234123456/10/QZ2611A").epcs() == [lot]


def test_sscc_scans_name_the_sscc_epc() -> None:
    digits = "06901234000000001"
    sscc = digits + check_digit(digits)
    assert sscc_epc(sscc) == "urn:epc:id:sscc:6901234.0000000001"
    assert identify(f"]C100{sscc}").epcs() == ["urn:epc:id:sscc:6901234.0000000001"]
    assert identify(f"(00){sscc}").sscc == sscc


def test_text_stays_text() -> None:
    for text in (
        "QZ2611A",
        "urn:epc:id:sscc:6901234.0000000001",
        "CSQU3054383",
        "BL-LCB-778",
        "12345678",
        "https://example.com/not/a/link",
    ):
        found = identify(f"  {text}\n")
        assert found.text == text
        assert not found.is_gs1


def test_a_broken_scan_is_text_not_an_error() -> None:
    assert not identify("(01)123").is_gs1
    assert not identify("]d2zzz").is_gs1
    assert identify("").text == ""
