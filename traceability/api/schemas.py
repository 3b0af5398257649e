"""Stage 3, API: the response and request bodies of the API's routes (pydantic models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    database: bool
    ledger_head_seq: int | None = Field(description="seq of the newest ledger entry; null when empty")
    stages: dict[str, bool] = Field(
        default_factory=dict, description="each stage of this process and whether it is alive"
    )


class VerifyResponse(BaseModel):
    ok: bool = Field(description="nothing found wrong in the chain or any checkpoint")
    events: int = Field(description="ledger entries read")
    first_bad_seq: int | None = Field(description="first seq where the chain does not hold; null if ok")
    anchored: bool = Field(
        default=False, description="ok, a key is pinned, and a checkpoint signed by it vouches for the chain"
    )
    signed_seq: int | None = Field(default=None, description="the chain is signed through this seq")
    pinned: bool = Field(default=False, description="a public key outside the database was pinned")
    problems: list[str] = Field(default_factory=list, description="each problem found, naming its seq")


class CaptureJobModel(BaseModel):
    captureID: str  # noqa: N815 - GS1 REST bindings field name
    running: bool
    success: bool
    captureErrorBehaviour: str  # noqa: N815
    errors: list[dict[str, Any]]
    events: int
    firstSeq: int | None  # noqa: N815
    lastSeq: int | None  # noqa: N815
    alreadyCaptured: list[dict[str, Any]] = Field(  # noqa: N815
        default_factory=list, description="events of the document the ledger held already: eventID, seq"
    )


class CheckpointModel(BaseModel):
    seq: int
    entry_hash: str
    signed_at: str
    public_key: str
    signature: str


class Alarm(BaseModel):
    model_config = {"extra": "allow"}
    alarm_id: int
    asset_id: str | None = None
    rule_id: str | None = None
    severity: str | None = None
    state: str | None = None
    shipment_id: str | None = Field(None, description="a shipment profile's alarm: the shipment")
    profile_version: int | None = Field(None, description="the profile version in force at the readings")
    source: str | None = Field(None, description="the shipper's specification the profile cites")


class AlarmAction(BaseModel):
    note: str = Field("", max_length=2000)
