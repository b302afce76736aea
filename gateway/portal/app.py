"""The portal web application (aiohttp + jinja2), a thin edge.

``build_app(store, config, secret, spool=None)`` returns the aiohttp
Application; the daemon runs it in its own loop with ``web.AppRunner`` /
``web.TCPSite`` (see ``serve``). Patients log in, read (HTML sanitised),
download attachments, reply and write to their provider. The app never
delivers: every mail it writes (replies and new messages, the read notice,
reset links) is handed with its plan to ``spool.enqueue`` (``mails``), which
returns once the mail is committed to the queue; only then does the patient
see "sent" (else an error page: nothing was sent). Patients see what they
sent and its delivery state under "Sent", turn the optional TOTP second
factor on and off under "Sign-in security", and ask for a password-reset link
on the login page ("Forgot password?"): that link is issued and queued after
the answer, so the answer is the same, and as quick, whether or not the
address has an account.

No address or PHI in any URL: messages and attachments are addressed by
random public ids checked against the session's account. Every POST needs the
CSRF token bound to the session (or pre-login) cookie.

Registration proves identity with something the notice does not carry: the
date of birth on file (``phigate portal grant``), or staff approval
(``phigate portal approve``) when none is on file — until then the link
shows "please call us" and the account is listed by ``phigate portal
pending``. Wrong dates of birth are counted per link and per account
(``portal.identity_max_attempts`` / ``identity_account_max_attempts``); at
the limit the link (or every link of the account) is void. Failed logins are
counted per client address (``portal.login_client_limit`` per
``login_client_window``): that address then waits, the account does not.
Uploads are checked by ``gateway.portal.uploads``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import pyotp
import segno
import structlog
from aiohttp import web

from gateway.audit import audit
from gateway.config.models import PortalConfig
from gateway.portal.auth import (
    Authenticator,
    Lockout,
    hash_password,
    password_problem,
    totp_step,
)
from gateway.portal.mails import compose_to_provider, phi_free, read_notice, reset_mail, to_provider
from gateway.portal.security import (
    content_disposition,
    csrf_ok,
    csrf_token,
    safe_filename,
    sanitize_html,
    security_headers,
)
from gateway.portal.store import AttachmentIn, PortalStore
from gateway.portal.uploads import UploadRefused, allowed_labels, check_upload

log = structlog.get_logger()
HERE = Path(__file__).parent
SESSION_COOKIE = "phigate_session"
PRE_COOKIE = "phigate_pre"
# "Forgot password?": at most this many links per address asked for, and this
# many requests per client address, per window (seconds).
FORGOT_WINDOW = 3600.0
FORGOT_PER_ADDRESS = 3
FORGOT_PER_CLIENT = 20

STORE = web.AppKey("store", PortalStore)
CONFIG = web.AppKey("config", PortalConfig)
SECRET = web.AppKey("secret", bytes)
PREVIOUS_SECRETS = web.AppKey("previous_secrets", tuple)   # still accepted on forms (rotation)
AUTH = web.AppKey("auth", Authenticator)
SPOOL = web.AppKey("spool", object)
TASKS = web.AppKey("tasks", set)
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def load_secret(path: Path) -> bytes:
    """The app's HMAC secret, created (0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = path.open("xb")
        path.chmod(0o600)
        with fd:
            fd.write(secrets.token_bytes(32))
    return path.read_bytes()


def _binding(request: web.Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_COOKIE)


@web.middleware
async def guard(request: web.Request, handler):
    """Security headers on every answer; CSRF and Origin checks on every POST."""
    config = request.app[CONFIG]
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="Cross-site request refused.")
        form = await request.post()
        if not csrf_ok((request.app[SECRET], *request.app[PREVIOUS_SECRETS]), _binding(request),
                       form.get("csrf")):
            raise web.HTTPForbidden(text="This form expired. Go back, reload the page and try again.")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(security_headers(config.secure_cookies))
        raise
    response.headers.update(security_headers(config.secure_cookies))
    return response


def render(request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
    """Render with a CSRF token; give a pre-login cookie to visitors without one."""
    binding = _binding(request)
    fresh = None
    if binding is None:
        fresh = binding = secrets.token_urlsafe(32)
    context = {**context, "csrf": csrf_token(request.app[SECRET], binding),
               "practice_name": request.app[CONFIG].practice_name,
               "help_phone": request.app[CONFIG].help_phone}
    html = request.app[TEMPLATES].get_template(template).render(context)
    response = web.Response(text=html, content_type="text/html", status=status)
    if fresh:
        _set_cookie(request, response, PRE_COOKIE, fresh)
    return response


def _set_cookie(request, response, name, value, max_age=None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", path="/",
                        secure=request.app[CONFIG].secure_cookies, max_age=max_age)


async def current_account(request: web.Request) -> dict:
    raw = request.cookies.get(SESSION_COOKIE)
    config = request.app[CONFIG]
    account = raw and await request.app[STORE].session_account(
        raw, config.session_idle_timeout, config.session_absolute_timeout)
    if not account:
        raise web.HTTPSeeOther("/login")
    return account


# ------------------------------------------------------------------ handlers
async def index(request: web.Request):
    raise web.HTTPSeeOther("/inbox")


async def login_form(request: web.Request):
    return render(request, "login.html", {})


async def login(request: web.Request):
    form = await request.post()
    config, store = request.app[CONFIG], request.app[STORE]
    client = client_address(request)
    limit = (_throttle_key(request, "login-client", client), config.login_client_window,
             config.login_client_limit)
    # Counted before the attempt (atomically, so concurrent tries from one
    # client cannot all slip under the limit) and given back on success.
    if not await store.throttle([limit]):
        minutes = max(1, round(config.login_client_window / 60))
        return render(request, "login.html", {
            "error": f"Too many tries from here. Please wait {minutes} minutes and try again, "
                     "or use \u201cForgot password?\u201d.", "email": form.get("email", "")},
            status=429)
    account = await request.app[AUTH].login(str(form.get("email", "")),
                                           str(form.get("password", "")),
                                           str(form.get("code", "")))
    if account is None:
        audit("portal_login_failed", peer=client)
        return render(request, "login.html", {"error": "That did not work. Check your e-mail "
                      "address and password, or call us.", "email": form.get("email", "")},
                      status=401)
    await store.unthrottle(limit[0])
    audit("portal_login", account_id=account["id"])
    await request.app[STORE].log_access(account["id"], "login")
    raw = await request.app[STORE].create_session(account["id"])
    response = web.HTTPSeeOther("/inbox")
    _set_cookie(request, response, SESSION_COOKIE, raw)
    response.del_cookie(PRE_COOKIE, path="/")
    raise response


async def logout(request: web.Request):
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        await request.app[STORE].end_session(raw)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def needs_staff(account: dict, config: PortalConfig) -> bool:
    """Registration cannot prove identity: no birth date on file and no staff
    approval, or too many wrong birth dates."""
    return ((not account["birth_date"] and account["identity_verified_at"] is None)
            or account["identity_failures"] >= config.identity_account_max_attempts)


def _link_view(purpose: str):
    template = "register.html" if purpose == "register" else "reset.html"

    async def _valid(request: web.Request):
        """(account, refusal page): the link's account, or why it cannot be used."""
        account = await request.app[STORE].peek_link(request.match_info["token"], purpose)
        if account is None:
            return None, render(request, "expired.html", {}, status=410)
        # a "reset" of a never-registered account is a registration too ("Forgot
        # password?" must not be a way round the identity proof)
        unregistered = account["password_hash"] is None
        if unregistered and needs_staff(account, request.app[CONFIG]):
            return None, render(request, "identity.html", {}, status=403)
        return account, None

    async def form(request: web.Request):
        account, refused = await _valid(request)
        if refused is not None:
            return refused
        return render(request, template, {"ask_birth_date": bool(account["birth_date"])})

    async def submit(request: web.Request):
        token = request.match_info["token"]
        store, config = request.app[STORE], request.app[CONFIG]
        account, refused = await _valid(request)
        if refused is not None:
            return refused
        form_data = await request.post()
        ask = bool(account["birth_date"])
        if ask and str(form_data.get("birth_date", "")).strip() != account["birth_date"]:
            audit("portal_identity_failed", account_id=account["id"], action=purpose)
            if await store.count_identity_failure(token, config.identity_max_attempts,
                                                  config.identity_account_max_attempts):
                return render(request, "expired.html", {}, status=410)
            return render(request, template, {"ask_birth_date": ask, "error": "The date of "
                          "birth does not match our records. Please call us."}, status=400)
        error = password_problem(str(form_data.get("password", "")),
                                 str(form_data.get("password2", "")))
        if error:
            return render(request, template, {"ask_birth_date": ask, "error": error}, status=400)
        account_id = await store.use_link(token, purpose,
                                          await hash_password(str(form_data["password"])))
        if account_id is None:
            return render(request, "expired.html", {}, status=410)
        await store.log_access(account_id, purpose)
        raise web.HTTPSeeOther("/login")

    return form, submit


async def inbox(request: web.Request):
    account = await current_account(request)
    messages = await request.app[STORE].inbox(account["id"])
    return render(request, "inbox.html", {"account": account, "messages": messages,
                                          "sent": "sent" in request.query})


async def _open(request: web.Request, account: dict):
    found = await request.app[STORE].open_message(account["id"], request.match_info["mid"])
    if found is None:
        raise web.HTTPNotFound(text="No such message.")
    return found


async def read_message(request: web.Request):
    account = await current_account(request)
    message, files, first = await _open(request, account)
    store = request.app[STORE]
    audit("portal_view", account_id=account["id"], message_ref=message["public_id"],
          queue_id=message["queue_id"])
    await store.log_access(account["id"], "view", message["public_id"])
    if first:
        audit("read_receipt", account_id=account["id"], message_ref=message["public_id"],
              queue_id=message["queue_id"], recipient=message["recipient"])
        await store.log_access(account["id"], "read_receipt", message["public_id"])
        if request.app[CONFIG].read_notice:
            await _queue_read_notice(request, account, message)
    return _message_page(request, account, message, files)


def _message_page(request: web.Request, account: dict, message: dict, files: list[dict],
                  error: str = "", body: str = "", status: int = 200) -> web.Response:
    html = sanitize_html(message["body_html"]) if message["body_html"] else ""
    files = [{**f, "filename": safe_filename(f["filename"])} for f in files]
    return render(request, "message.html", {"account": account, "message": message,
                                            "files": files, "html": html, "error": error,
                                            "body": body}, status=status)


async def _queue_read_notice(request: web.Request, account: dict, message: dict) -> None:
    """Queue the PHI-free "your message was read" notice to the message's sender."""
    built = read_notice(request.app[CONFIG], message, time.time(), domain=_domain(request))
    if built is None:
        return
    to, msg = built
    envelope, plan = phi_free(str(msg["From"]), to, "read-notice",
                              "the portal's notice that a message was read")
    await _enqueue_or_log(request.app, envelope, msg.as_bytes(), plan, account["id"],
                          "read notice")


async def _enqueue_or_log(app: web.Application, envelope, raw: bytes, plan, account_id: int,
                          what: str) -> str | None:
    """Queue a mail the patient did not write (it must not fail their request)."""
    spool = app.get(SPOOL)
    if spool is None:
        log.warning("portal: no queue to send through", account_id=account_id, mail=what)
        return None
    try:
        return await spool.enqueue(envelope, raw, plan)
    except Exception as exc:  # noqa: BLE001 - logged by type only: the text may hold the address
        log.warning("portal: mail not queued", account_id=account_id, mail=what,
                    error=type(exc).__name__)
        return None


def _domain(request: web.Request) -> str | None:
    return urlsplit(request.app[CONFIG].base_url).hostname or None


async def download(request: web.Request):
    account = await current_account(request)
    found = await request.app[STORE].attachment(account["id"], request.match_info["mid"],
                                                request.match_info["aid"])
    if found is None:
        raise web.HTTPNotFound(text="No such file.")
    await request.app[STORE].log_access(account["id"], "download", request.match_info["mid"])
    response = web.Response(body=found["data"], content_type="application/octet-stream")
    response.headers["Content-Disposition"] = content_disposition(found["filename"])
    return response


async def _files(request: web.Request, form) -> list[AttachmentIn]:
    """The uploaded files, typed from their content; UploadRefused names the
    first one refused (audited without its name)."""
    config = request.app[CONFIG]
    out = []
    for field in form.getall("file", []):
        if isinstance(field, web.FileField):
            data = field.file.read()
            if not data:
                continue
            name = safe_filename(field.filename or "file")
            try:
                ok = await asyncio.to_thread(check_upload, name, data, config.upload_types,
                                             int(config.upload_max_expanded))
            except UploadRefused as exc:
                audit("portal_upload_refused", reason=str(exc), size=len(data))
                raise UploadRefused(f"\u201c{name}\u201d cannot be sent: {exc}. You can send: "
                                    f"{allowed_labels(config.upload_types)}.") from None
            out.append(AttachmentIn(ok.filename, ok.content_type, data))
    return out


def _subject_problem(subject: str) -> str | None:
    if any(c in subject for c in "\r\n\x00"):
        return "The subject cannot contain a line break. Please write it on one line."
    return None


NOT_SENT = ("Your message could not be sent just now, and it was not saved. Please try "
            "again in a few minutes{phone}.")


async def _enqueue(request, account, subject, body, files, in_reply_to="") -> None:
    """Commit the patient's message to the queue before answering; on any
    failure answer 503 (nothing was sent, the patient may try again)."""
    config = request.app[CONFIG]
    msg = compose_to_provider(config, account, subject, body, files, in_reply_to,
                              domain=_domain(request))
    store, spool = request.app[STORE], request.app.get(SPOOL)
    route = to_provider(config, account)
    queue_id = None
    if spool is not None and route is not None:
        try:
            queue_id = await spool.enqueue(route[0], msg.as_bytes(), route[1])
        except Exception as exc:  # noqa: BLE001 - spool down or full: the patient is told
            log.warning("portal: message not queued", account_id=account["id"],
                        error=type(exc).__name__)
    if queue_id is None:
        phone = f", or call us at {config.help_phone}" if config.help_phone else ""
        raise web.HTTPServiceUnavailable(text=NOT_SENT.format(phone=phone))
    await store.record_sent(account["id"], queue_id, str(msg["Subject"]))
    audit("portal_reply", account_id=account["id"], queue_id=queue_id, count=len(files))
    await store.log_access(account["id"], "send", queue_id[:32])


async def reply(request: web.Request):
    account = await current_account(request)
    message, _files_meta, _first = await _open(request, account)
    form = await request.post()
    subject = " ".join(message["subject"].split())
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    try:
        files = await _files(request, form)
    except UploadRefused as exc:
        return _message_page(request, account, message, _files_meta, str(exc),
                             str(form.get("body", "")), status=400)
    await _enqueue(request, account, subject, str(form.get("body", "")), files,
                   message["message_id"])
    raise web.HTTPSeeOther("/sent?sent")


async def compose_form(request: web.Request):
    account = await current_account(request)
    return render(request, "compose.html", {"account": account})


async def compose(request: web.Request):
    account = await current_account(request)
    form = await request.post()
    subject, body = str(form.get("subject", "")), str(form.get("body", ""))
    try:
        error = _subject_problem(subject)
        files = [] if error else await _files(request, form)
    except UploadRefused as exc:
        error = str(exc)
    if error:
        return render(request, "compose.html", {"account": account, "error": error,
                                                "subject": subject, "body": body}, status=400)
    await _enqueue(request, account, subject, body, files)
    raise web.HTTPSeeOther("/sent?sent")


async def sent_view(request: web.Request):
    account = await current_account(request)
    rows = await request.app[STORE].sent(account["id"])
    return render(request, "sent.html", {"account": account, "rows": rows,
                                         "just_sent": "sent" in request.query})


# ------------------------------------------------------- forgotten password
def client_address(request: web.Request) -> str:
    """The client's IP address; behind a reverse proxy on this host (peer on
    loopback) the last X-Forwarded-For entry, the one that proxy added."""
    peer = request.remote or ""
    try:
        local = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    if local:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return peer


def _throttle_key(request: web.Request, kind: str, value: str) -> str:
    """An HMAC, so the throttle table holds no address, e-mail or IP."""
    return hmac.new(request.app[SECRET], f"throttle:{kind}:{value}".encode(),
                    hashlib.sha256).hexdigest()


async def forgot_form(request: web.Request):
    return render(request, "forgot.html", {})


async def forgot(request: web.Request):
    """Same answer whatever was entered; a link is issued and mailed (in the
    background) only for an active account and within the rate limits."""
    form = await request.post()
    address = str(form.get("email", "")).strip()[:320]
    store = request.app[STORE]
    account = await store.account_by_email(address) if address else None
    allowed = await store.throttle([
        (_throttle_key(request, "forgot-address", address.lower()), FORGOT_WINDOW,
         FORGOT_PER_ADDRESS),
        (_throttle_key(request, "forgot-client", client_address(request)), FORGOT_WINDOW,
         FORGOT_PER_CLIENT)])
    if allowed and account is not None and account["status"] == "active":
        # Issuing the link (database writes) and mailing it happen after the
        # answer, so a known address does not answer more slowly.
        _background(request.app, _send_reset(request.app, account, _domain(request)))
    return render(request, "forgot_sent.html", {})


def _background(app: web.Application, coro) -> None:
    task = asyncio.create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def _send_reset(app: web.Application, account: dict, domain: str | None):
    """Issue the link and commit its mail to the queue (the dispatcher
    delivers it, with retries, like any mail)."""
    if app.get(SPOOL) is None:
        log.warning("portal: no queue to send a reset link through", account_id=account["id"])
        return
    config, store = app[CONFIG], app[STORE]
    token = await store.issue_link(account["id"], "reset", config.reset_link_ttl)
    await store.log_access(account["id"], "reset_request")
    link = f"{config.base_url.rstrip('/')}/reset/{token}"
    msg = reset_mail(config, account["email"], link, domain)
    envelope, plan = phi_free(str(msg["From"]), account["email"], "portal-reset",
                              "the password-reset link a patient asked for")
    queue_id = await _enqueue_or_log(app, envelope, msg.as_bytes(), plan, account["id"],
                                     "reset link")
    if queue_id is not None:
        audit("notice_sent", account_id=account["id"], action="portal_reset",
              queue_id=queue_id)


async def settle(app: web.Application, timeout: float = 30.0) -> None:
    """Wait (bounded) until the reset links being queued are committed: on
    shutdown, and in tests."""
    if app[TASKS]:
        await asyncio.wait(set(app[TASKS]), timeout=timeout)


async def _drain(app: web.Application) -> None:
    await settle(app)


# ------------------------------------------------------------ sign-in security
def _qr_data_uri(uri: str) -> str:
    """The TOTP key as a QR code (SVG data URI, allowed by the CSP's img-src)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


async def security_page(request: web.Request, error: str = "", status: int = 200):
    account = await current_account(request)
    context = {"account": account, "enabled": bool(account["totp_secret"]), "error": error,
               "done": request.query.get("done", "")}
    pending = account["totp_pending"]
    if pending and not account["totp_secret"]:
        uri = pyotp.TOTP(pending).provisioning_uri(name=account["email"],
                                                   issuer_name=request.app[CONFIG].practice_name)
        context.update(pending=True, secret_groups=" ".join(
            pending[i:i + 4] for i in range(0, len(pending), 4)),
            otpauth_uri=uri, qr=_qr_data_uri(uri))
    return render(request, "security.html", context, status=status)


async def totp_start(request: web.Request):
    account = await current_account(request)
    if not account["totp_secret"]:
        await request.app[STORE].set_account(account["id"], totp_pending=pyotp.random_base32())
    raise web.HTTPSeeOther("/security")


async def totp_cancel(request: web.Request):
    account = await current_account(request)
    await request.app[STORE].set_account(account["id"], totp_pending=None)
    raise web.HTTPSeeOther("/security")


async def totp_confirm(request: web.Request):
    account = await current_account(request)
    form = await request.post()
    pending = account["totp_pending"]
    if account["totp_secret"] or not pending:
        raise web.HTTPSeeOther("/security")
    step = totp_step(pending, str(form.get("code", "")))
    if step is None:
        return await security_page(request, "That code did not match. Check the time on your "
                                   "phone and enter the code now shown.", status=400)
    await request.app[STORE].set_account(account["id"], totp_secret=pending, totp_pending=None,
                                         totp_last_step=step)
    await request.app[STORE].log_access(account["id"], "totp_on")
    raise web.HTTPSeeOther("/security?done=on")


async def totp_off(request: web.Request):
    account = await current_account(request)
    if not account["totp_secret"]:
        raise web.HTTPSeeOther("/security")
    form = await request.post()
    if not await request.app[AUTH].confirm(account, str(form.get("password", "")),
                                           str(form.get("code", ""))):
        return await security_page(request, "That did not work. Check your password and the "
                                   "code from your app.", status=400)
    await request.app[STORE].set_account(account["id"], totp_secret=None, totp_pending=None,
                                         totp_last_step=None)
    await request.app[STORE].log_access(account["id"], "totp_off")
    raise web.HTTPSeeOther("/security?done=off")


def _local_time(ts: float | None) -> str:
    return time.strftime("%d %b %Y, %H:%M", time.localtime(ts)) if ts else ""


def build_app(store: PortalStore, config: PortalConfig, secret: bytes,
              spool=None, previous_secrets: tuple[bytes, ...] = ()) -> web.Application:
    """``spool``: ``enqueue(envelope, raw, plan) -> queue id`` (the daemon's
    dispatcher, or ``RemoteSpool`` when the portal runs alone);
    ``previous_secrets``: forms signed with these are still accepted."""
    app = web.Application(middlewares=[guard],
                          client_max_size=int(config.max_upload_size) + 1_000_000)
    app[STORE] = store
    app[CONFIG] = config
    app[SECRET] = secret
    app[PREVIOUS_SECRETS] = tuple(previous_secrets)
    app[AUTH] = Authenticator(store, Lockout(config.lockout_threshold, config.lockout_base,
                                             config.lockout_max))
    if spool is not None:
        app[SPOOL] = spool
    app[TASKS] = set()
    app.on_cleanup.append(_drain)
    app[TEMPLATES] = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                        autoescape=True)
    app[TEMPLATES].filters["when"] = _local_time
    register_form, register_submit = _link_view("register")
    reset_form, reset_submit = _link_view("reset")
    app.add_routes([
        web.get("/", index), web.get("/login", login_form), web.post("/login", login),
        web.post("/logout", logout),
        web.get("/register/{token}", register_form), web.post("/register/{token}", register_submit),
        web.get("/reset/{token}", reset_form), web.post("/reset/{token}", reset_submit),
        web.get("/inbox", inbox), web.get("/m/{mid}", read_message),
        web.get("/m/{mid}/a/{aid}", download), web.post("/m/{mid}/reply", reply),
        web.get("/compose", compose_form), web.post("/compose", compose),
        web.get("/sent", sent_view),
        web.get("/forgot", forgot_form), web.post("/forgot", forgot),
        web.get("/security", security_page), web.post("/security/totp/start", totp_start),
        web.post("/security/totp/confirm", totp_confirm),
        web.post("/security/totp/cancel", totp_cancel), web.post("/security/totp/off", totp_off),
        web.static("/static", HERE / "static"),
    ])
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start ``app`` in the running loop; stop with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
