"""Tests: the stages' generated broker logins: kept once, merged into an existing ACL, never a device's."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from gateway.credentials import (
    ACL_ALL_USERS,
    STAGE_ACL,
    STAGE_LOGINS_FILE,
    acl_users,
    ensure_stage_logins,
    verify_password,
)

# An ACL as an older data directory holds it: the gateway's block and one device.
OLDER_ACL = """# hand-kept comment
user gateway
topic read cc/v1/dev/#
topic write cc/v1/alerts/#

user dev-old
topic write cc/v1/dev/dev-old/#
"""


def _hashes(passwd: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in passwd.read_text().splitlines() if line)


def test_stage_logins_are_generated_once_and_merged_into_an_existing_acl(tmp_path: Path) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    acl.write_text(OLDER_ACL)
    logins = ensure_stage_logins(passwd, acl)
    assert set(logins) == set(STAGE_ACL)
    assert (tmp_path / STAGE_LOGINS_FILE).stat().st_mode & 0o777 == 0o600
    hashes = _hashes(passwd)
    for user, password in logins.items():
        assert verify_password(password, hashes[user]), user
    text = acl.read_text()
    assert text.startswith(OLDER_ACL), "every line already there is kept"
    assert ACL_ALL_USERS in text
    assert text.count("user gateway\n") == 1
    assert [u for u in acl_users(acl) if u not in STAGE_ACL] == ["dev-old"]

    assert ensure_stage_logins(passwd, acl) == logins, "kept, not regenerated"
    assert acl.read_text() == text
    assert _hashes(passwd) == hashes


@pytest.mark.parametrize("stage", sorted(STAGE_ACL))
def test_a_device_cannot_take_a_stage_login(
    stage: str, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before anything opens: `devices add gateway` would otherwise rotate the gateway's login."""
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    logins = ensure_stage_logins(passwd, acl)
    before = passwd.read_text()
    monkeypatch.setenv("COLDCHAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", _url(db_url))
    args = ["devices", "add", stage, "--kind", "temp_logger", "--passwd-file", str(passwd)]
    result = CliRunner().invoke(app, [*args, "--acl-file", str(acl)])
    assert result.exit_code == 2, result.output
    assert "is the login of a stage" in result.output
    assert passwd.read_text() == before
    assert verify_password(logins[stage], _hashes(passwd)[stage])


def _url(db_url: str) -> str:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(db_url)
    url = f"postgresql://{info['user']}@/{info['dbname']}?host={info['host']}"
    return url + (f"&port={info['port']}" if info.get("port") else "")
