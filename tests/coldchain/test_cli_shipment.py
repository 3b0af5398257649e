"""Composition root: `coldchain shipment create|list|show|close` register, read and close a shipment (JSON
on the last line) and refuse a bad file or a refused shipment in one line, on a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from process_support import as_url, coldchain

from coldchain.cli.common import ExitCode
from registry import store
from registry.models import Location, Lot, Party
from rules.worker import RulesWorker

CARRIER = Party("6901234100006", "Beibu Gulf Reefer", "carrier")
PORT = Location("urn:epc:id:sgln:6901234.00010.0", "Qinzhou port", "port")
LOT = Lot("urn:epc:class:lgtin:8850000.012345.D1", "durian", origin_country="TH")

SHIPMENT_TOML = f"""
shipment_id = "SHP-CLI-1"
product_class = "durian"
through_document = "TD-CLI-1"
bill_of_lading = "BL-CLI-1"
destination_location_id = "{PORT.location_id}"
planned_start = 2026-03-01T00:00:00Z
planned_end = 2026-03-04T00:00:00Z
stops = ["{PORT.location_id}"]

[[legs]]
leg_no = 1
mode = "sea"
carrier_party_id = "{CARRIER.party_id}"
container_number = "CSQU3054383"
vessel = "Beibu 1"

[[lots]]
lot_id = "{LOT.lot_id}"
quantity = 120
uom = "CT"
"""


class Cli:
    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp = tmp_path
        self.env = {"COLDCHAIN_HOME": str(tmp_path / "home"), "COLDCHAIN_DATABASE_URL": as_url(db_url)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return coldchain("shipment", *args, env=self.env)

    def json(self, *args: str) -> Any:
        done = self.run(*args)
        assert done.returncode == ExitCode.OK, done.stdout[-2000:] + done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def error(self, code: int, fragment: str, *args: str) -> None:
        done = self.run(*args)
        assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
        assert done.stderr.count("\n") == 1, done.stderr
        assert fragment in done.stderr
        assert "Traceback" not in done.stderr

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    with psycopg.connect(db_url) as conn:
        store.add_parties(conn, [CARRIER])
        store.add_locations(conn, [PORT])
        store.add_lots(conn, [LOT])
    RulesWorker(db_url).sync_classes()  # the classes' bounds, as the rules stage publishes them
    return Cli(tmp_path, db_url)


def test_a_shipment_file_registers_reads_back_lists_and_closes(cli: Cli) -> None:
    created = cli.json("create", cli.file("s.toml", SHIPMENT_TOML))
    assert created["shipment_id"] == "SHP-CLI-1"
    assert created["source"] == "cli"
    assert created["state"] == "planned"
    assert [(leg["mode"], leg["container_number"]) for leg in created["legs"]] == [("sea", "CSQU3054383")]
    assert cli.json("show", "SHP-CLI-1") == created
    listed = cli.json("list")["shipments"]
    assert [(s["shipment_id"], s["state"]) for s in listed] == [("SHP-CLI-1", "planned")]
    assert cli.json("list", "--state", "closed")["shipments"] == []
    closed = cli.json("close", "SHP-CLI-1", "--at", "2026-03-05T00:00:00")
    assert closed["state"] == "closed"
    assert closed["closed_at"].startswith("2026-03-05T00:00:00")
    cli.error(ExitCode.FAILED, "closed already", "close", "SHP-CLI-1")


def test_a_json_file_registers_too(cli: Cli) -> None:
    body = {"shipment_id": "SHP-J", "lots": [{"lot_id": LOT.lot_id}], "legs": [{"leg_no": 1, "mode": "rail"}]}
    assert cli.json("create", cli.file("s.json", json.dumps(body)))["legs"][0]["mode"] == "rail"


def test_a_bad_file_or_a_refused_shipment_is_one_line(cli: Cli) -> None:
    cli.error(ExitCode.USAGE, "not valid TOML", "create", cli.file("bad.toml", "shipment_id = "))
    cli.error(ExitCode.USAGE, "cannot read", "create", str(cli.tmp / "missing.json"))
    bad_box = SHIPMENT_TOML.replace("CSQU3054383", "CSQU3054384")
    cli.error(ExitCode.USAGE, "legs.0.container_number", "create", cli.file("box.toml", bad_box))
    unknown = SHIPMENT_TOML.replace(LOT.lot_id, "urn:epc:class:lgtin:0000000.000000.X")
    cli.error(ExitCode.FAILED, "lot_id names nothing registered", "create", cli.file("lot.toml", unknown))
    cli.json("create", cli.file("s.toml", SHIPMENT_TOML))
    cli.error(ExitCode.FAILED, "registered already", "create", cli.file("s.toml", SHIPMENT_TOML))
    cli.error(ExitCode.FAILED, "no shipment 'SHP-NONE'", "show", "SHP-NONE")
    cli.error(ExitCode.FAILED, "no shipment 'SHP-NONE'", "close", "SHP-NONE")
    cli.error(ExitCode.USAGE, "unknown state", "list", "--state", "lost")


def test_profile_versions_never_looser_than_the_class(cli: Cli) -> None:
    cli.json("create", cli.file("s.toml", SHIPMENT_TOML))
    first = cli.json("profile", "SHP-CLI-1", "--source", "DS-7 §2", "--low-c", "11", "--max-gap-s", "300")
    assert first["profiles"] == [
        {"version": 1, "source": "DS-7 §2", "low_c": 11.0, "high_c": None, "max_gap_s": 300.0}
    ]
    cli.error(
        ExitCode.FAILED, "looser than class durian", "profile", "SHP-CLI-1", "--source", "x", "--low-c", "9"
    )
    cli.error(ExitCode.FAILED, "looser", "profile", "SHP-CLI-1", "--source", "x", "--high-c", "16")
    cli.error(ExitCode.FAILED, "looser", "profile", "SHP-CLI-1", "--source", "x", "--max-gap-s", "601")
    second = cli.json("profile", "SHP-CLI-1", "--source", "DS-7 §3", "--high-c", "14")
    assert [p["version"] for p in second["profiles"]] == [1, 2]
    cli.error(ExitCode.FAILED, "no shipment", "profile", "SHP-NONE", "--source", "x", "--low-c", "11")
