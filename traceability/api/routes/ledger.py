"""Stage 3, API: GET /ledger/verify and GET /ledger/checkpoint: the chain's proof."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request

from traceability.api.deps import Db, Reader
from traceability.api.options import ApiOptions
from traceability.api.problems import ApiProblemError
from traceability.api.schemas import CheckpointModel, VerifyResponse
from traceability.ledger import checkpoint
from traceability.ledger import verify as ledger_verify

log = logging.getLogger(__name__)

router = APIRouter(tags=["ledger"])


@router.get("/ledger/verify", response_model=VerifyResponse)
def verify(request: Request, conn: Db, _: Reader, deep: bool = False) -> VerifyResponse:
    """Check every event's chained bytes, every chain link, that the served JSON is those bytes, and the
    newest signed checkpoint; ``deep=true`` also re-derives every event's GS1 CBV 2.0 hash (slow)."""
    public_key: str | None = None
    kept: list[tuple[str, checkpoint.Checkpoint]] = []
    opts: ApiOptions = request.app.state.options
    key_path = opts.ledger_key
    if key_path is not None and key_path.exists():
        try:
            public_key = checkpoint.pinned_key(str(key_path))
            kept = checkpoint.own_log(key_path)
        except checkpoint.CheckpointFormatError:
            log.exception("the ledger's key file or checkpoint log is unreadable")
            raise ApiProblemError(
                503, "Service Unavailable", "the ledger's key file or checkpoint log is unreadable"
            ) from None
    result = ledger_verify.verify(conn, deep=deep, public_key=public_key, kept=kept)
    return VerifyResponse.model_validate(result, from_attributes=True)


@router.get("/ledger/checkpoint", response_model=CheckpointModel)
def latest_checkpoint(conn: Db, _: Reader) -> CheckpointModel:
    """The newest signed checkpoint of the chain head."""
    cp = checkpoint.latest(conn)
    if cp is None:
        raise ApiProblemError(404, "Not Found", "no checkpoint signed yet")
    return CheckpointModel(**cp.as_dict())
