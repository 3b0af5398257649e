"""Tests for rules.packs: the shipped packs load; a broken pack fails naming its file and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.packs import DEFAULT_PACKS_DIR, PackError, load_packs

SHIPPED = (DEFAULT_PACKS_DIR / "cn_food.toml").read_text(encoding="utf-8")


def test_shipped_packs_load() -> None:
    packs = load_packs()
    assert "cn_food" in packs.packs
    chilled = packs["chilled"]
    assert (chilled.pack_id, chilled.rule_id("range")) == ("cn_food", "cn_food/chilled/range")
    r = chilled.rules
    assert (r.low_c, r.high_c, r.low_inclusive, r.high_inclusive) == (0.0, 4.0, True, True)
    assert r.min_duration.seconds == 600
    assert (r.max_interval_s("transport"), r.max_interval_s("storage")) == (600, 1800)
    frozen = packs.lookup("frozen")
    assert frozen is not None
    assert (frozen.rules.low_c, frozen.rules.high_c) == (None, -18.0)
    assert packs.lookup("rambutan") is None
    for ref in packs.classes():
        rules = ref.rules
        for source in (
            rules.source,
            rules.min_duration.source,
            rules.max_interval.transport.source,
            rules.max_interval.storage.source,
        ):
            assert source.strip()
    assert "GB 29753-2013" in r.max_interval.transport.source
    assert "GB/T 24616-2019" in frozen.rules.source


def _write(tmp_path: Path, text: str, name: str = "cn_food.toml") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_wrong_type_names_file_and_key_path(tmp_path: Path) -> None:
    bad = SHIPPED.replace("low_c = 0.0", 'low_c = "zero"', 1)
    with pytest.raises(PackError) as err:
        load_packs(_write(tmp_path, bad))
    assert "cn_food.toml: classes.chilled.low_c: Input should be a valid number" in str(err.value)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    bad = SHIPPED.replace("seconds = 600\n", "seconds = 600\nsecs = 1\n", 1)
    with pytest.raises(PackError, match=r"cn_food\.toml: classes\.chilled\.min_duration\.secs: Extra inputs"):
        load_packs(_write(tmp_path, bad))


def test_missing_source_and_bad_range(tmp_path: Path) -> None:
    bad = SHIPPED.replace("low_c = 0.0", "low_c = 5.0", 1)
    with pytest.raises(PackError, match=r"cn_food\.toml: classes\.chilled: .*low_c \(5\.0\) is above high_c"):
        load_packs(_write(tmp_path, bad))
    lines = SHIPPED.splitlines(keepends=True)
    idx = next(i for i, line in enumerate(lines) if line.startswith("[classes.frozen.max_interval.storage]"))
    del lines[idx + 2]  # its source line
    with pytest.raises(PackError, match=r"classes\.frozen\.max_interval\.storage\.source: Field required"):
        load_packs(_write(tmp_path, "".join(lines)))


def test_invalid_toml_and_id_mismatch(tmp_path: Path) -> None:
    with pytest.raises(PackError, match=r"cn_food\.toml: invalid TOML"):
        load_packs(_write(tmp_path, SHIPPED + "\n[[[broken\n"))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(PackError, match=r"my_pack\.toml: id: pack id 'cn_food' must equal"):
        load_packs(_write(other, SHIPPED, "my_pack.toml"))


def test_duplicate_class_across_packs_and_empty_dir(tmp_path: Path) -> None:
    _write(tmp_path, SHIPPED)
    _write(tmp_path, SHIPPED.replace('id = "cn_food"', 'id = "cn_food2"'), "cn_food2.toml")
    with pytest.raises(PackError, match=r"cn_food2\.toml: classes\.chilled: class already defined"):
        load_packs(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PackError, match="no rule packs"):
        load_packs(empty)


# -- the full set of packs and the extended class schema -----------------------------------------------


def _all_sources(obj: object, path: str = "") -> list[tuple[str, str]]:
    """Every `source` string in a class, with its key path."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "source":
                out.append((path, v))
            else:
                out.extend(_all_sources(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_all_sources(v, f"{path}[{i}]"))
    return out


def test_default_packs_and_required_classes() -> None:
    packs = load_packs()
    assert set(packs.packs) >= {"cn_food", "cn_drug_gsp", "vaccines", "usp", "who_pqs"}
    for code in ("frozen", "chilled", "pharma_2_8", "usp_crt"):
        assert code in packs
    gsp = packs["pharma_2_8"].rules
    assert (gsp.low_c, gsp.high_c) == (2.0, 8.0)
    assert (gsp.max_interval_s("storage"), gsp.max_interval_s("transport")) == (1800, 300)
    assert (gsp.oor_interval_s("storage"), gsp.oor_interval_s("transport")) == (120, 120)
    crt = packs["usp_crt"].rules
    assert (crt.low_c, crt.high_c) == (20.0, 25.0)
    assert crt.band is not None
    assert (crt.band.low_c, crt.band.high_c) == (15.0, 30.0)
    assert crt.mkt is not None
    assert (crt.mkt.limit_c, crt.mkt.window_s, crt.mkt.delta_h_r_k) == (25.0, 30 * 86400, 10_000.0)
    chilled = packs["chilled"].rules
    assert chilled.hysteresis_c == 0.5
    assert chilled.shelf_life is not None
    assert chilled.shelf_life.model == "sqrt"
    assert [(t.name, t.kind) for t in packs["pqs_2_8"].rules.triggers] == [
        ("freeze", "consecutive"),
        ("heat_single", "consecutive"),
    ]
    # Every limit cites its standard and clause (or says "project default").
    for ref in packs.classes():
        sources = _all_sources(ref.rules.model_dump())
        assert len(sources) >= 3, ref.code
        for path, text in sources:
            assert text.strip(), f"{ref.code}{path}"


def test_extended_tables_fail_with_key_path(tmp_path: Path) -> None:
    who = (DEFAULT_PACKS_DIR / "who_pqs.toml").read_text(encoding="utf-8")
    bad = who.replace('kind = "cumulative"', 'kind = "rolling"', 1)
    with pytest.raises(
        PackError, match=r"who_pqs\.toml: classes\.pqs_indicator_type1\.triggers\.1\.kind: Input should be"
    ):
        load_packs(_write(tmp_path, bad, "who_pqs.toml"))
    bad2 = who.replace("window_s = 2592000\n", "", 1)
    with pytest.raises(
        PackError, match=r"classes\.pqs_indicator_type1\.triggers\.1: .*cumulative trigger needs window_s"
    ):
        load_packs(_write(tmp_path, bad2, "who_pqs.toml"))
    bad3 = SHIPPED.replace('model = "sqrt"', 'model = "arrhenius"', 1)
    with pytest.raises(PackError, match=r"classes\.chilled\.shelf_life: .*arrhenius model needs ea_kj_mol"):
        load_packs(_write(tmp_path, bad3, "cn_food.toml"))
    (tmp_path / "cn_food.toml").unlink()
    (tmp_path / "who_pqs.toml").unlink()
    usp = (DEFAULT_PACKS_DIR / "usp.toml").read_text(encoding="utf-8")
    bad4 = usp.replace("limit_c = 25.0", 'limit_c = "hot"', 1)
    with pytest.raises(
        PackError, match=r"usp\.toml: classes\.usp_crt\.mkt\.limit_c: Input should be a valid number"
    ):
        load_packs(_write(tmp_path, bad4, "usp.toml"))
