"""Composition root: `coldchain devices ...` commands (device registry and broker credentials)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

devices_app = typer.Typer(help="Devices: registry and broker credentials.", no_args_is_help=True)

DEVICE_KINDS = ("temp_logger", "reefer_controller", "rfid_reader", "gps_tracker", "gateway_box")


@devices_app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(help="Device id: its MQTT username and topic segment.")],
    kind: Annotated[str, typer.Option(help="temp_logger, reefer_controller, rfid_reader, gps_tracker, …")],
    asset: Annotated[str | None, typer.Option(help="Asset the device is mounted on (from now).")] = None,
    passwd_file: Annotated[
        Path | None, typer.Option(help="Mosquitto password file (default COLDCHAIN_HOME/mqtt/passwd).")
    ] = None,
    acl_file: Annotated[
        Path | None, typer.Option(help="Mosquitto ACL (default COLDCHAIN_HOME/mqtt/acl).")
    ] = None,
) -> None:
    """Register a device, mount it on an asset, create its broker login and ACL; print the password once."""
    from coldchain.cli.common import ExitCode, cli_settings
    from coldchain.datadir import DataDir
    from coldchain.stack import open_stack
    from gateway.credentials import add_device, check_device_id

    if kind not in DEVICE_KINDS:
        typer.echo(f"unknown kind {kind!r} (choose from {', '.join(DEVICE_KINDS)})", err=True)
        raise typer.Exit(ExitCode.USAGE)
    try:
        check_device_id(device_id)
    except ValueError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    settings = cli_settings()
    data = DataDir(settings.home)
    passwd = passwd_file or data.passwd_file
    acl = acl_file or data.acl_file
    with open_stack(settings) as stack:
        register_device(stack.database_url, device_id, kind, asset)
    password = add_device(passwd, acl, device_id)
    typer.echo(f"device {device_id} registered ({kind}{', on ' + asset if asset else ''})")
    typer.echo(f"broker login: username {device_id}  password {password}")
    typer.echo("(shown once; stored only as a hash in " + str(passwd) + ")")
    typer.echo(f"it may publish only under cc/v1/dev/{device_id}/# (ACL {acl})")
    if passwd_file is None and acl_file is None and data.reload_broker():
        typer.echo("the running embedded broker has reloaded its logins")
    else:
        typer.echo("a running mosquitto reloads them on SIGHUP")


def register_device(database_url: str, device_id: str, kind: str, asset: str | None) -> None:
    """Insert (or reactivate) the device row and open its mount on the asset."""
    import psycopg

    from registry.store import enrol_device, get_asset, mount_device

    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(database_url) as conn:
        enrol_device(conn, device_id, kind)
        if asset is not None:
            if get_asset(conn, asset) is None:
                raise typer.BadParameter(f"asset {asset!r} is not registered", param_hint="--asset")
            mount_device(conn, device_id, asset, now)
