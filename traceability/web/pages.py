"""Stage 3 (faces): the web pages' routes (sign-in, search, trace, alarms, the public scan page), mounted in
the API's app under ``/ui/`` and ``/scan/``; Jinja2 templates in zh-CN and en, our own static files."""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from rules.alarms import lifecycle
from traceability import i18n
from traceability.api import auth
from traceability.api.options import ApiOptions
from traceability.api.pools import Conn, Lease
from traceability.api.scope import scope_of
from traceability.i18n import words
from traceability.ledger import checkpoint
from traceability.reports import build as reports
from traceability.reports import download, proof
from traceability.trace import trace, trace_lot
from traceability.trace_model import Trace
from traceability.web import paths, sessions, views
from traceability.web.paths import PREFIX, quote_id, trace_url
from traceability.web.ratelimit import TokenBucket
from traceability.web.sessions import COOKIE, Session

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LANG_COOKIE, ZONE_COOKIE, PRE_CSRF_COOKIE = "cc_lang", "cc_tz", "cc_signin_csrf"
YEAR_S = 365 * 24 * 3600
# The zones the page offers (any IANA zone in the cookie is honoured).
ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Bangkok",
    "Asia/Ho_Chi_Minh",
    "Asia/Singapore",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
)
N_ = words.N_

router = APIRouter(include_in_schema=False)


# -- errors a page answers --------------------------------------------------------------------------------


class PageError(Exception):
    """A page answered with this status and a message (an English msgid, translated when shown)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class SignInRequiredError(Exception):
    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


def local_path(candidate: str | None, default: str = PREFIX + "/") -> str:
    """``candidate`` when it is a path of this site (``/...``, not ``//host`` or ``/\\host``, no control
    characters), else ``default``: a return path never leads off the site."""
    if not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in candidate):
        return default
    return candidate


# -- language, zone, templates ----------------------------------------------------------------------------


def page_lang(request: Request) -> i18n.Lang:
    return i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


@cache
def templates(lang: i18n.Lang) -> Environment:
    """The templates of ``lang``: one environment per language, its gettext installed once."""
    env = Environment(
        loader=PackageLoader("traceability.web", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translations = i18n.translations(lang)
    env.install_gettext_callables(translations.gettext, translations.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


@cache
def chart_script() -> bool:
    """Whether the charts' hover script is there to load (it comes with the charts)."""
    return (STATIC / "chart.js").is_file()


def render(
    request: Request,
    name: str,
    *,
    status: int = 200,
    session: Session | None = None,
    title: str = "",
    **context: Any,
) -> HTMLResponse:
    lang = page_lang(request)
    tz = i18n.zone(request.cookies.get(ZONE_COOKIE), lang)
    _ = i18n.gettext_for(lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    options: ApiOptions = request.app.state.options
    html = (
        templates(lang)
        .get_template(name)
        .render(
            lang=lang,
            other_lang="en" if lang == "zh-CN" else "zh-CN",
            tz=tz.key,
            zones=ZONES if tz.key in ZONES else (tz.key, *ZONES),
            fmt=views.Formats(lang, tz, _),
            here=here,
            here_q=quote(here, safe="/"),
            session=session,
            user=None if session is None else session.principal,
            may_alarms=session is not None and session.principal.may(auth.ALARMS),
            csrf=None if session is None else session.csrf_token,
            title=title,
            trace_url=trace_url,
            quote_id=quote_id,
            word=lambda table, code: views.word(table, code, _),
            reason_text=lambda text: views.reason_text(text, _),
            words=views,
            chart_script=chart_script(),
            map_tile_url=options.map_tile_url,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = lang
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = content_policy(options.map_tile_url)
    return response


def content_policy(tile_url: str | None) -> str:
    """Nothing but this site's own files (and the map tiles' origin, when a tile URL is set). Scripts only
    from files (no inline script or handler); inline styles are allowed, for the charts' SVG."""
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url)
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; img-src {images}; style-src 'self' 'unsafe-inline'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# -- dependencies -----------------------------------------------------------------------------------------


async def web_conn(request: Request) -> Conn:
    """The request's one connection (the app's lease: audited by its middleware)."""
    lease: Lease = request.state.lease
    return await lease.acquire()


async def signed_in(request: Request, conn: Annotated[Conn, Depends(web_conn)]) -> Session:
    """The viewer's live session, else a redirect to sign-in (back here after)."""
    found = await run_in_threadpool(sessions.session_of, conn, request.cookies.get(COOKIE))
    if found is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequiredError(back)
    request.state.principal = found.principal  # the app's middleware writes the audit row
    request.state.web_session = found
    return found


def _role(permission: str) -> Callable[..., Any]:
    async def check(session: Annotated[Session, Depends(signed_in)]) -> Session:
        if not session.principal.may(permission):
            raise PageError(403, N_("Your role may not use this page."))
        return session

    return check


Reader = Annotated[Session, Depends(_role(auth.READ))]
Operator = Annotated[Session, Depends(_role(auth.ALARMS))]
Db = Annotated[Conn, Depends(web_conn)]


def seen_by(session: Session) -> dict[str, str | None]:
    """What the session's key may read (its scope's parameters): every page's query filters through it."""
    return scope_of(session.principal).params()


def require_csrf(session: Session, presented: str | None) -> None:
    if not sessions.csrf_ok(session, presented):
        raise PageError(
            403, N_("This form has expired or did not come from this site. Reload the page and try again.")
        )


# -- sign-in ----------------------------------------------------------------------------------------------


@router.get(PREFIX + "/signin")
def signin_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _signin_page(request, local_path(next), error=None, status=200)


def _signin_page(request: Request, back_to: str, *, error: str | None, status: int) -> HTMLResponse:
    # Before a session there is no session token: the form carries a token also set as a cookie
    # (double submit), so another site cannot sign a browser in under its own key.
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "signin.html",
        status=status,
        next=back_to,
        signin_csrf=token,
        error=error,
        title=N_("Sign in"),
    )
    _cookie(request, response, PRE_CSRF_COOKIE, token, 3600)
    return response


@router.post(PREFIX + "/signin")
def signin(
    request: Request,
    conn: Db,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    expected = request.cookies.get(PRE_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected.encode(), csrf.encode()):
        raise PageError(
            403, N_("This form has expired or did not come from this site. Reload the page and try again.")
        )
    opened = sessions.open_session(conn, key.strip())
    if opened is None:
        return _signin_page(request, local_path(next), error=N_("Unknown or revoked API key."), status=401)
    token, session = opened
    request.state.principal = session.principal
    response = RedirectResponse(local_path(next), status_code=303)
    _cookie(request, response, COOKIE, token, sessions.SESSION_TTL_S)
    response.delete_cookie(PRE_CSRF_COOKIE, path="/")
    return response


@router.post(PREFIX + "/signout")
def signout(
    request: Request,
    conn: Db,
    session: Annotated[Session, Depends(signed_in)],
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    require_csrf(session, csrf)
    sessions.close_session(conn, request.cookies.get(COOKIE))
    response = RedirectResponse(PREFIX + "/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- preferences ------------------------------------------------------------------------------------------


@router.get(PREFIX + "/lang/{lang}")
def choose_lang(request: Request, lang: str, next: str | None = None) -> Response:
    response = RedirectResponse(local_path(next), status_code=303)
    if lang in i18n.LANGS:
        _cookie(request, response, LANG_COOKIE, lang, YEAR_S)
    return response


@router.get(PREFIX + "/zone")
def choose_zone(request: Request, zone: str = "", next: str | None = None) -> Response:
    response = RedirectResponse(local_path(next), status_code=303)
    if zone:
        _cookie(request, response, ZONE_COOKIE, i18n.zone(zone, page_lang(request)).key, YEAR_S)
    else:
        response.delete_cookie(ZONE_COOKIE, path="/")
    return response


# -- search and trace -------------------------------------------------------------------------------------


@router.get(PREFIX + "/")
def search_page(request: Request, conn: Db, session: Reader, q: str = "") -> Response:
    if not q.strip():
        return render(request, "search.html", session=session, q="", found=None, title=N_("Search"))
    found = views.search(conn, q, seen_by(session))
    if len(found.lots) == 1:
        return RedirectResponse(trace_url(found.lots[0]), status_code=303)
    return render(
        request,
        "search.html",
        status=200 if found.lots else 404,
        session=session,
        q=q,
        found=found,
        title=N_("Search"),
    )


def _trace_or_404(conn: Conn, trace_id: str, session: Session) -> Trace:
    found = trace(conn, trace_id, seen_by(session))
    if found is None:
        raise PageError(404, N_("Nothing was found for this identifier."))
    return found


def _checkpoint_at(conn: Conn, seq: int | None) -> checkpoint.Checkpoint | None:
    """The signed head at ``seq`` (the newest checkpoint there, as the API finds it); None for no ``seq``."""
    if seq is None:
        return None
    cp = checkpoint.at_seq(conn, seq)
    if cp is None:
        raise PageError(404, N_("Nothing was found for this identifier."))
    return cp


_NO_BUNDLE = N_("No signed checkpoint covers this lot's events yet: there is no bundle to download.")


@router.get(PREFIX + "/trace/{trace_id:path}/bundle.json")
def bundle_download(trace_id: str, conn: Db, session: Reader, seq: int | None = None) -> Response:
    """The lot's evidence bundle, as the API's ``/trace/{id}/bundle.json`` gives it (``seq``: the signed
    head a report names, so its bundle is fetched byte for byte)."""
    found = _trace_or_404(conn, trace_id, session)
    cp = _checkpoint_at(conn, seq)
    try:
        data, proven = proof.evidence(conn, found, reading_rows=0, generated_at=datetime.now(UTC), cp=cp)
    except proof.ReportError:
        raise PageError(404, _NO_BUNDLE) from None
    return Response(data, media_type=download.BUNDLE_MEDIA_TYPE, headers=download.bundle_headers(proven))


@router.get(PREFIX + "/trace/{trace_id:path}/report.{fmt}")
def report_download(
    request: Request, trace_id: str, fmt: str, conn: Db, session: Reader, seq: int | None = None
) -> Response:
    """A lot's report as ``fmt`` (pdf, xlsx, csv), built and sent as the API's report routes build and
    send it (``seq``: the signed head to prove it against, as the trace page's evidence shows it)."""
    chosen = next((f for f in reports.FORMATS if f == fmt), None)
    if chosen is None:
        raise PageError(404, N_("Nothing was found for this identifier."))
    found = _trace_or_404(conn, trace_id, session)
    cp = _checkpoint_at(conn, seq)
    lang = page_lang(request)
    try:
        report = reports.read_report(
            conn,
            found.lot_id,
            lang=lang,
            tz=i18n.zone(request.cookies.get(ZONE_COOKIE), lang),
            legs=reports.REPORT_LEG_READINGS,
            trace_url=paths.trace_page_url(str(request.base_url), found.lot_id),
            base_url=str(request.base_url),
            cp=cp,
            with_readings=chosen != "pdf",
            seen_by=seen_by(session),
        )
    except proof.ReportError:
        report = None
    if report is None:
        raise PageError(404, _NO_BUNDLE)
    return Response(
        reports.render(report, chosen),
        media_type=reports.MEDIA_TYPES[chosen],
        headers=download.report_headers(report.proof, chosen, prefix=PREFIX),
    )


@router.get(PREFIX + "/trace/{trace_id:path}")
def trace_page(request: Request, trace_id: str, conn: Db, session: Reader) -> Response:
    started = time.perf_counter()
    found = _trace_or_404(conn, trace_id, session)
    lang = page_lang(request)
    tz = i18n.zone(request.cookies.get(ZONE_COOKIE), lang)
    fmt = views.Formats(lang, tz, i18n.gettext_for(lang))
    options: ApiOptions = request.app.state.options
    response = render(
        request,
        "trace.html",
        session=session,
        t=found,
        legs=views.leg_views(conn, found, fmt, tile_url=options.map_tile_url),
        evidence=views.evidence(conn, found, views.pinned_public_key(options.ledger_key)),
        verify_command=proof.VERIFY_BUNDLE_COMMAND,
        title=N_("Trace"),
    )
    # The page's own time (trace, views, rendering): what `coldchain bench` reads (coldchain.bench.web).
    response.headers["Server-Timing"] = f"page;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


@router.get(PREFIX + "/ledger/verify")
def ledger_page(request: Request, conn: Db, session: Reader) -> Response:
    """The whole ledger verified now: every event's chained bytes and link, every checkpoint (slow on a
    large ledger: it is a page of its own, asked for)."""
    options: ApiOptions = request.app.state.options
    result = views.verify_ledger(conn, options.ledger_key)
    if result is None:
        raise PageError(503, N_("The ledger's key file or checkpoint log is unreadable."))
    return render(request, "ledger.html", session=session, result=result, title=N_("Ledger verification"))


# -- alarms -----------------------------------------------------------------------------------------------

ALARM_LIMIT = 500


@router.get(PREFIX + "/alarms")
def alarms_page(
    request: Request,
    conn: Db,
    session: Operator,
    state: str = "open",
    severity: str = "",
    asset: str = "",
    kind: str = "",
) -> Response:
    state = state if state in views.ALARM_STATES or state == "all" else "open"
    severity = severity if severity in views.SEVERITIES else ""
    kind = kind.strip()[:200]
    # Every filter is the query's, before its limit: a match older than the newest 500 still shows.
    rows = lifecycle.list_alarms(
        conn,
        state=None if state == "all" else state,
        asset_id=asset.strip()[:200] or None,
        severity=severity or None,
        kind=kind or None,
        limit=ALARM_LIMIT,
        seen_by=seen_by(session),
    )
    kinds = lifecycle.alarm_kinds(conn)
    return render(
        request,
        "alarms.html",
        session=session,
        alarms=rows,
        filters={"state": state, "severity": severity, "asset": asset, "kind": kind},
        kinds=kinds,
        parse_time=lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None,
        title=N_("Alarms"),
    )


@router.post(PREFIX + "/alarms/{alarm_id}/{action}")
def alarm_action(
    request: Request,
    alarm_id: int,
    action: str,
    conn: Db,
    session: Annotated[Session, Depends(signed_in)],
    csrf: Annotated[str | None, Form()] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    require_csrf(session, csrf)
    if not session.principal.may(auth.ALARMS):
        raise PageError(403, N_("Your role may not use this page."))
    step = {"ack": lifecycle.acknowledge, "resolve": lifecycle.resolve}.get(action)
    if step is None:
        raise PageError(404, N_("No such alarm."))
    try:
        with conn.transaction():
            done = step(conn, alarm_id, by=session.principal.name, note=note, seen_by=seen_by(session))
    except lifecycle.AlarmStateError:
        raise PageError(409, N_("This alarm is already resolved.")) from None
    if done is None:
        raise PageError(404, N_("No such alarm."))
    return RedirectResponse(local_path(back, PREFIX + "/alarms"), status_code=303)


# -- the public scan page ---------------------------------------------------------------------------------


@router.get("/scan/{code:path}")
def scan_page(request: Request, code: str, conn: Db) -> Response:
    bucket: TokenBucket = request.app.state.scan_bucket
    client = request.client.host if request.client is not None else "-"
    if not bucket.allow(client):
        raise PageError(
            429,
            N_("Too many scans from here. Wait a moment and try again."),
            retry_after=bucket.retry_after_s(client),
        )
    lot_id = views.scan_lot(conn, code)
    if lot_id is None:
        raise PageError(404, N_("Nothing was found for this code."))
    traced = trace_lot(conn, lot_id)
    if traced is None:
        raise PageError(404, N_("Nothing was found for this code."))
    return render(request, "scan.html", scan=views.scan_view(traced), title=N_("Product check"))


# -- the app's side ---------------------------------------------------------------------------------------


def install_scan_bucket(app: FastAPI, bucket: TokenBucket) -> None:
    """The scan page's rate limit (``install`` sets the default one)."""
    app.state.scan_bucket = bucket


def install(app: FastAPI) -> None:
    """Mount the pages in ``app``: the routes, ``/`` sending browsers to ``/ui/``, the static files and the
    pages' own error answers (HTML, never an exception's text)."""
    install_scan_bucket(app, TokenBucket())

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        response = render(
            request,
            "error.html",
            status=exc.status,
            message=exc.message,
            title=N_("Error"),
            session=getattr(request.state, "web_session", None),
        )
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequiredError)
        target = PREFIX + "/signin?" + urlencode({"next": local_path(exc.back_to)})
        return RedirectResponse(target, status_code=303)

    api_http_error = app.exception_handlers[StarletteHTTPException]
    api_validation_error = app.exception_handlers[RequestValidationError]

    def is_page(request: Request) -> bool:
        path = request.url.path
        return path.startswith((PREFIX + "/", "/scan/")) and not path.startswith(PREFIX + "/static/")

    async def api_answer(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
        answered = handler(request, exc)
        response: Response = await answered if inspect.isawaitable(answered) else answered
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        """A page path that is not there (404, 405 ...): a page; anywhere else the API's problem+json."""
        assert isinstance(exc, StarletteHTTPException)
        if is_page(request):
            message = N_("Nothing was found for this identifier.") if exc.status_code == 404 else N_("Sorry")
            return render(request, "error.html", status=exc.status_code, message=message, title=N_("Error"))
        return await api_answer(api_http_error, request, exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        """A page's parameter or form field that does not fit (too long, not a number ...): a page in the
        viewer's language; anywhere else the API's problem+json."""
        assert isinstance(exc, RequestValidationError)
        if is_page(request):
            return render(
                request,
                "error.html",
                status=422,
                message=N_("This request could not be read. Check the address or the form and try again."),
                title=N_("Error"),
                session=getattr(request.state, "web_session", None),
            )
        return await api_answer(api_validation_error, request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(SignInRequiredError, sign_in_required)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    @app.get(PREFIX, include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="web-static")
