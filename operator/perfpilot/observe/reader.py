"""The Prometheus reader: the only module here that does I/O.

Range queries POSTed to ``/api/v1/query_range`` with the parameters in the form body (a query over a few
hundred namespaces is longer than the URL a proxy in front of Prometheus takes: nginx's default is 8 KB) and
an explicit end time (an instant query at "now" silently returns nothing once the data is older than the
lookback, see ``shared/TESTING.md``), one deadline
per query covering every retry, exponential backoff on connection errors and 5xx answers only (a 4xx is a
bad query and will not get better), a bearer token re-read from its file on every query (projected
service-account tokens rotate), a CA file or ``insecure``, and extra headers such as ``X-Scope-OrgID``.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import urllib3
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from perfpilot.api.spec import PROMETHEUS_URL_MAX_LENGTH
from perfpilot.api.urls import prometheus_url_problem, redact_url
from perfpilot.observe.instrumentation import PROMQL_QUERIES, PROMQL_QUERY_SECONDS, PROMQL_RETRIES

# RFC 9110 "token": anything else in a header name is either refused by requests or sent as a malformed request.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers the query's own body defines: a Content-Type of the user's made Prometheus ignore the form.
_HEADERS_OF_THE_QUERY = frozenset({"content-type", "content-length", "transfer-encoding"})
# The defaults of PrometheusSettings' step and rate window, which the simulator's Prometheus evaluates with too.
DEFAULT_STEP_SECONDS = 60
DEFAULT_RATE_WINDOW_SECONDS = 120


def header_problem(name: str, value: str) -> str | None:
    """What makes ``name: value`` unusable as an HTTP header, or None. requests refuses only some of these
    (per query, as an odd answer) and sends the rest as a malformed request."""
    if not _HEADER_NAME.fullmatch(name):
        return "expected a header name of letters, digits and !#$%&'*+-.^_`|~ only"
    if name.lower() in _HEADERS_OF_THE_QUERY:
        return "is set by the reader itself (the queries are a form POST); another value would void the query"
    if any(ch != "\t" and unicodedata.category(ch) == "Cc" for ch in value):
        return "expected a header value without control characters such as a newline"
    if any(ord(ch) > 0xFF for ch in value):
        return "expected a header value of Latin-1 characters (HTTP sends header values as Latin-1)"
    if value != value.strip():
        return "expected a header value without leading or trailing whitespace"
    return None


class PrometheusSettings(BaseModel):
    """How the operator (and ``perfpilot plan``) reach Prometheus or a compatible store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        "", max_length=PROMETHEUS_URL_MAX_LENGTH,  # as a profile's prometheusURL, which it stands in for
        description="Base URL (http://prometheus:9090, or a Thanos/Mimir/VictoriaMetrics Prometheus API root). "
        "A profile's spec.metrics.prometheusURL overrides it for that profile.",
    )
    timeout_seconds: float = Field(
        10.0, ge=0.1, le=300,
        description="Longest wait for one query, every retry and backoff included (a tenth of a second at least: "
        "less is no time to answer, and the failure would blame the server).",
    )
    retries: int = Field(
        2, ge=0, le=10, description="Extra attempts after a connection error or a 5xx answer (never after a 4xx)."
    )
    backoff_seconds: float = Field(
        0.25, ge=0, le=30, description="Wait before the first retry; doubled before each further retry."
    )
    bearer_token_file: Path | None = Field(
        None, description="File holding a bearer token, re-read on every query (rotated tokens keep working)."
    )
    ca_file: Path | None = Field(None, description="PEM bundle to verify the server's TLS certificate with.")
    insecure_skip_verify: bool = Field(False, description="Do not verify the server's TLS certificate.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers on every query, e.g. X-Scope-OrgID for Mimir/Cortex."
    )
    step_seconds: int = Field(
        DEFAULT_STEP_SECONDS, ge=1, le=3600,
        description="Resolution of every range query; one step for all profiles of a cycle.",
    )
    rate_window_seconds: int = Field(
        DEFAULT_RATE_WINDOW_SECONDS, ge=1, le=3600,
        description="Range of rate() in the queries; at least four scrape intervals.",
    )
    container_matchers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra label matchers for the cAdvisor series (e.g. cluster on a multi-cluster store).",
    )

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        problem = prometheus_url_problem(url) if url else None  # empty: every profile names its own
        if problem is not None:
            raise PydanticCustomError("prometheus_url", problem)
        return url

    @field_validator("rate_window_seconds")
    @classmethod
    def _rate_window_covers_a_step(cls, rate_window_seconds: int, info: ValidationInfo) -> int:
        # The peaks take a rate at each step: a rate window shorter than the step leaves the time between
        # unread (at a 300 s step, a 120 s window sees 40% of the week a CPU cut is checked against).
        step_seconds = info.data.get("step_seconds")
        if step_seconds is not None and rate_window_seconds < step_seconds:
            raise PydanticCustomError(
                "rate_window_below_step", "must be at least the step ({step}s): the time between would go unread",
                {"step": step_seconds})
        return rate_window_seconds

    @field_validator("headers")
    @classmethod
    def _usable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                # The name goes in as context: pydantic fills "{...}" in a template, and a name is user text.
                raise PydanticCustomError("http_header", "header {name}: " + problem, {"name": repr(name)})
        return headers

    def for_url(self, url: str) -> PrometheusSettings:
        return self.model_copy(update={"url": url})


class BearerTokenError(Exception):
    """A bearer token file gives no usable token; the message names the file and why."""


def read_bearer_token(path: Path) -> str:
    """The token in ``path``; raises ``BearerTokenError`` when it is unreadable, not UTF-8, or not sendable in an
    Authorization header (a control character would have requests refuse every query, or send it malformed)."""
    try:
        token = path.read_bytes().decode("utf-8").strip()
    except OSError as error:
        raise BearerTokenError(f"cannot read bearer token file {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise BearerTokenError(
            f"bearer token file {path} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})"
        ) from error
    if not token:
        raise BearerTokenError(f"bearer token file {path} is empty")
    problem = header_problem("Authorization", f"Bearer {token}")
    if problem is not None:
        raise BearerTokenError(f"bearer token file {path} holds no usable token: {problem}")
    return token


class PrometheusError(Exception):
    """A query could not be answered; names the URL (``url``, as given) and the cause."""

    def __init__(self, *, url: str, cause: str) -> None:
        # Shown without any password: the text lands in profiles' statuses and in logs.
        super().__init__(f"prometheus {redact_url(url)}: {cause}")
        self.url = url
        self.cause = cause


class PrometheusUnreachable(PrometheusError):
    """Connection refused or reset, timed out, or 5xx until the deadline: nothing from this server now. Also an
    address no request can be sent to (an invalid URL): no query reached a server, and none will."""


class PrometheusQueryError(PrometheusError):
    """The server answered but refused the query (4xx) or answered something that is not a result."""


class PrometheusQueryTooHeavy(PrometheusQueryError):
    """The server refused the query as one that would hold more samples than it allows (Prometheus'
    ``--query.max-samples``, VictoriaMetrics' ``-search.maxSamplesPerQuery``): the same question over a
    shorter span may be answered."""


# How a store says a query would hold more samples than it allows: Prometheus over --query.max-samples
# (promql.ErrTooManySamples, since 2.x; Thanos and Mimir pass it on), VictoriaMetrics over
# -search.maxSamplesPerQuery (since v1.64, "cannot select more than -search.maxSamplesPerQuery=N samples",
# whose own advice is a shorter time range).
_TOO_MANY_SAMPLES = ("would load too many samples into memory", "-search.maxSamplesPerQuery=")


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and ``(unix seconds, value as sent)`` samples."""

    labels: Mapping[str, str]
    samples: tuple[tuple[float, str], ...]


# The share of the time left that the server is given for a query (the rest covers the answer's transfer).
_SERVER_TIMEOUT_SHARE = 0.9
# The largest answer read, decoded: a thousand profiles' per-container series are a few MB; more is a query
# matching far more than it should (or a look-alike), and reading it would take the operator past its memory.
MAX_ANSWER_BYTES = 64 * 2**20
_CHUNK_BYTES = 64 * 1024


class _AnswerNotRead(Exception):
    """An answer larger than MAX_ANSWER_BYTES, or still arriving at the deadline (requests' timeout bounds each
    read of the socket, not the whole answer: a server trickling bytes would hold the cycle for good)."""


def _read1(response: requests.Response) -> bytes | None:
    """What one read of the socket brought, decoded; urllib3's errors become the ones requests raises for them
    in ``iter_content`` (a stall: ConnectionError, read as a timeout; a body cut short or undecodable: an
    unexpected answer), so a server failing mid-answer fails the query, never the cycle."""
    try:
        chunk: bytes | None = response.raw.read1(_CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.ConnectionError(error) from error
    except urllib3.exceptions.SSLError as error:
        raise requests.exceptions.SSLError(error) from error
    except urllib3.exceptions.ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except urllib3.exceptions.DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    return chunk


def _read_answer(response: requests.Response, *, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    # read1 returns what one read of the socket brought (decoded), where iter_content waits for a whole chunk:
    # a trickle would be checked against the deadline once per 64 KiB. (A read that stalls waits up to the
    # socket timeout, the time that was left when the query was sent.)
    while chunk := _read1(response):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _AnswerNotRead(f"answer of more than {MAX_ANSWER_BYTES:,} bytes: not read")
        if time.monotonic() > deadline:
            raise _AnswerNotRead(f"answer still arriving at the deadline ({size} bytes read)")
        chunks.append(chunk)
    return b"".join(chunks)


class _ServerError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.query_timed_out = _error_type(body) == "timeout"


class _QueryRefused(Exception):
    """A 4xx answer (or any other that is neither 200 nor 5xx): a bad query, which will not get better."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        error = _error_text(body)
        self.too_many_samples = any(marker in error for marker in _TOO_MANY_SAMPLES)


def _error_text(body: str) -> str:
    """The ``error`` of a Prometheus error answer (``{"status": "error", "errorType": ..., "error": ...}``),
    else the body: a proxy's or a long-term store's answer may wrap it in text of its own."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    return str(answer.get("error", body)) if isinstance(answer, dict) else body


class _Redirected(Exception):
    """A 3xx answer. Not followed: a client following a 301-303 turns the POST into a GET without its form
    (Prometheus then answers "invalid parameter start"), and one following to another host drops the token."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"the server redirects (HTTP {status}) to {location or 'nowhere given'}: set the "
                         f"Prometheus URL to where it points")


class _AnswerWithWarnings(Exception):
    """A 200 answer that carries warnings: partial data (a Thanos store or a remote-read endpoint down) or
    data PromQL had to guess about; summed over a subset, a rate or a count would read low, not unknown."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__("; ".join(warnings)[:300])


def _error_type(body: str) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return str(answer.get("errorType")) if isinstance(answer, dict) else None


def _result_of(response: requests.Response, body: bytes) -> Any:
    """``data.result`` of a 200 answer. A 5xx is ``_ServerError`` (retried), a redirect ``_Redirected``, any
    other status ``_QueryRefused``; an answer that carries warnings is ``_AnswerWithWarnings``; a 200 that is
    not JSON of that shape raises ValueError, KeyError or TypeError; one whose status is not "success" is
    ``_QueryRefused`` with the server's own error text, and one whose result is not a matrix a ValueError (a
    vector read as series without samples would make every signal "no samples" rather than a failed query)."""
    text = body.decode("utf-8", errors="replace")
    if response.status_code >= 500:
        raise _ServerError(response.status_code, text)
    if response.is_redirect:
        raise _Redirected(response.status_code, response.headers.get("Location", ""))
    if response.status_code != 200:
        raise _QueryRefused(response.status_code, text)
    answer = json.loads(body)
    warnings = answer.get("warnings") if isinstance(answer, dict) else None
    # Prometheus 2.46-2.49 sent its "PromQL info:" notes ("metric might not be a counter", a histogram fixed
    # for monotonicity) as warnings too: routine, not a sign of missing data.
    serious = [str(warning) for warning in warnings or () if not str(warning).startswith("PromQL info:")]
    if serious:
        raise _AnswerWithWarnings(serious)
    if answer["status"] != "success":
        raise _QueryRefused(response.status_code, f"{answer.get('errorType', 'error')}: {answer.get('error', '')}")
    data = answer["data"]
    if data["resultType"] != "matrix":
        raise ValueError(f"resultType {data['resultType']!r}, expected 'matrix'")
    return data["result"]


class PrometheusReader:
    """Range queries against one Prometheus; counts every query in ``perfpilot_promql_queries_total``."""

    def __init__(self, settings: PrometheusSettings) -> None:
        if not settings.url:
            raise ValueError("no Prometheus URL: set --prometheus or spec.metrics.prometheusURL")
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._label = redact_url(self.url)  # /metrics is served to anyone who can reach the pod
        # Settings made with for_url (a profile's own URL) are not validated; a bad address is this server's
        # problem, reported on each query like an unreachable server, not an error that stops every profile.
        self._url_problem = prometheus_url_problem(settings.url)
        # A requests session's adapter does not retry (max_retries 0): retries are ours, within the deadline.
        self._session = requests.Session()
        if settings.insecure_skip_verify:
            self._session.verify = False
        elif settings.ca_file is not None:
            self._session.verify = str(settings.ca_file)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PrometheusReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        headers = dict(self.settings.headers)
        if self.settings.bearer_token_file is not None:
            try:
                token = read_bearer_token(self.settings.bearer_token_file)
            except BearerTokenError as error:
                raise PrometheusQueryError(url=self.url, cause=str(error)) from error
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def query_range(
        self, promql: str, *, signal: str, end: datetime, window_seconds: float, step_seconds: int
    ) -> list[RangeSeries]:
        """Evaluate ``promql`` at every step of ``[end - window, end]``; ``end`` must be timezone-aware."""
        if end.tzinfo is None:
            raise ValueError("the evaluation time must be timezone-aware (a naive time would be read as local)")
        start = end - timedelta(seconds=window_seconds)
        began = time.monotonic()
        deadline = began + self.settings.timeout_seconds
        outcome = "error"
        try:
            result = self._with_retries(promql, start=start, end=end, step_seconds=step_seconds, deadline=deadline)
            outcome = "ok"
            return result
        except PrometheusUnreachable:
            outcome = "unreachable"
            raise
        except PrometheusQueryTooHeavy:
            outcome = "too_heavy"  # not an error when its parts are answered (snapshot reads them)
            raise
        finally:
            PROMQL_QUERIES.labels(prometheus=self._label, signal=signal, outcome=outcome).inc()
            PROMQL_QUERY_SECONDS.labels(prometheus=self._label).observe(time.monotonic() - began)

    def _with_retries(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: int, deadline: float
    ) -> list[RangeSeries]:
        if self._url_problem is not None:
            raise PrometheusUnreachable(url=self.url, cause=f"invalid URL: {self._url_problem}")
        attempts = 0
        backoff_seconds = self.settings.backoff_seconds
        while True:
            attempts += 1
            remaining_seconds = max(deadline - time.monotonic(), 0.001)
            # The server is told to give up a little before we do, so a query too heavy for the time left is
            # answered as such (503, errorType timeout): that query failed, the server is still there.
            server_timeout_ms = max(1, int(remaining_seconds * 1000 * _SERVER_TIMEOUT_SHARE))
            headers = self._headers()  # the token file is re-read for every attempt
            try:
                with self._session.post(
                    f"{self.url}/api/v1/query_range",
                    data={
                        "query": promql,
                        "start": str(round(start.timestamp())),
                        "end": str(round(end.timestamp())),
                        "step": str(step_seconds),
                        "timeout": f"{server_timeout_ms}ms",
                        # Thanos answers a query some stores could not serve with an error, not with partial
                        # data (Prometheus ignores the parameter).
                        "partial_response": "false",
                    },
                    headers=headers,
                    # Given with each request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the
                    # environment override the session's own setting (psf/requests#3829).
                    verify=self._session.verify,
                    timeout=remaining_seconds,
                    allow_redirects=False,
                    stream=True,
                ) as response:
                    raw = _result_of(response, _read_answer(response, deadline=deadline))
            except _AnswerNotRead as error:
                raise PrometheusQueryError(url=self.url, cause=str(error)) from error
            except _AnswerWithWarnings as error:
                raise PrometheusQueryError(url=self.url, cause=f"answer with warnings (partial data?): {error}") \
                    from error
            except (requests.ConnectionError, requests.Timeout, _ServerError) as error:
                if isinstance(error, _ServerError) and error.query_timed_out:
                    # This query is too heavy for the time given; the next ones may not be.
                    raise PrometheusQueryError(url=self.url, cause=f"query timed out on the server: {error}") \
                        from error
                cause = _describe(error)
                elapsed = self.settings.timeout_seconds - (deadline - time.monotonic())
                out_of_time = time.monotonic() + backoff_seconds >= deadline
                if attempts > self.settings.retries or out_of_time:
                    raise PrometheusUnreachable(
                        url=self.url, cause=f"{cause} ({attempts} attempt(s) in {elapsed:.1f}s)"
                    ) from error
                PROMQL_RETRIES.labels(prometheus=self._label).inc()
                time.sleep(backoff_seconds)
                backoff_seconds *= 2
                continue
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema) as error:
                # Refused before sending: no server was asked, and retrying cannot change that.
                raise PrometheusUnreachable(url=self.url, cause=f"invalid URL: {error}") from error
            except _QueryRefused as error:
                if error.too_many_samples:
                    raise PrometheusQueryTooHeavy(url=self.url, cause=f"query refused: {error}") from error
                raise PrometheusQueryError(url=self.url, cause=f"query refused: {error}") from error
            except _Redirected as error:
                raise PrometheusQueryError(url=self.url, cause=str(error)) from error
            except (requests.RequestException, ValueError, KeyError, TypeError) as error:
                # ValueError: a 200 that is not JSON; KeyError, TypeError: JSON that is not {"data": {"result":
                # ...}} (a list, null).
                raise PrometheusQueryError(url=self.url, cause=f"unexpected answer: {error}") from error
            return _parse(raw, url=self.url)


def _describe(error: Exception) -> str:
    if isinstance(error, _ServerError):
        return str(error)
    text = str(error)
    # With adapter retries off, urllib3 wraps a read timeout in a ConnectionError, not a requests.Timeout.
    if isinstance(error, requests.Timeout) or "timed out" in text or "TimeoutError" in text:
        return "timed out"
    for hint in ("Connection refused", "Name or service not known", "Connection reset", "No route to host"):
        if hint in text:
            return hint.lower()
    if isinstance(error, requests.exceptions.SSLError):
        # The reason sits at the end of urllib3's wrapping ("... (Caused by SSLError(SSLCertVerificationError(
        # 1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate ...")));
        # cutting the text short would drop it.
        reason = _TLS_REASON.search(text)
        return f"TLS handshake failed: {reason.group(0) if reason else text[-300:]} (check the CA bundle)"
    return f"connection error: {text[:200]}"


# "[SSL: CODE] text" up to OpenSSL's " (_ssl.c:N)" (the text may quote a host name), or the quote closing it.
_TLS_REASON = re.compile(r"\[(?:SSL|X509)[^\]]*\].*?(?= \(_ssl\.c:\d+\)|'\)|\"\)|$)")


def _sample_text(value: object) -> str:
    """A sample's value as Prometheus sends it (a string holding a float, NaN or +Inf included); anything else
    raises ValueError here rather than later, when the snapshot turns it into a number."""
    if not isinstance(value, str):
        raise ValueError(f"sample value {value!r} is not a string")
    float(value)
    return value


def _parse(raw: Any, *, url: str) -> list[RangeSeries]:
    if not isinstance(raw, list):
        raise PrometheusQueryError(url=url, cause=f"expected a matrix, got {type(raw).__name__}")
    series: list[RangeSeries] = []
    try:
        for item in raw:
            labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
            samples = tuple((float(stamp), _sample_text(value)) for stamp, value in item.get("values", []))
            series.append(RangeSeries(labels=labels, samples=samples))
    except (AttributeError, TypeError, ValueError) as error:
        # A server that answers 200 with something that is not a matrix (a proxy, a look-alike) is a failed
        # query, not a crash of the cycle.
        raise PrometheusQueryError(url=url, cause=f"unexpected answer: not a range matrix ({error})") from error
    return series
