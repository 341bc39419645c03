"""How one API call travels: sessions, TLS and proxy settings, per-origin credentials,
same-origin redirects, the answer size cap, transport errors and retries.

``ApiTransport`` is the base class of ``HiptahClient`` (http.py), which sets the
attributes declared below in its ``__init__``. Security rules kept here, in one place:
- the API key goes only to the base URL's origin (scheme + host + port): API
  calls never follow redirects on their own (``_redirect_target`` allows only
  same-origin hops), model downloads decide per hop (``_auth_headers_for``);
- TLS verification is always on (``ca_bundle`` or the environment may add CAs).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from . import download as _download
from .error_responses import _request_id, _ssl_reason, _status_error
from .errors import (
    APIConnectionError,
    APITimeoutError,
    HiptahError,
    TLSError,
    UnexpectedResponseError,
    is_retryable,
)
from .retry import BACKOFF_BASE, BACKOFF_CAP, RETRY_AFTER_CAP, backoff_delay
from .validation import is_loopback_host

# Logged under the client module's name, as before these methods moved here.
log = logging.getLogger(f"{__package__}.http")

MAX_API_REDIRECTS = 5
# API answers are small JSON documents; anything bigger is not one.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class ApiTransport:
    """Sends API calls for ``HiptahClient``, using the attributes its ``__init__`` sets."""

    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    retry_after_cap: float = RETRY_AFTER_CAP

    # Set by HiptahClient.__init__.
    _api_key: str
    _origin: tuple[str, str, int | None]
    base_url: str
    timeout: tuple[float, float]
    max_retries: int
    _given_session: requests.Session | None
    ca_bundle: str | None
    user_agent: str
    _sleep: Callable[[float], None]
    _clock: Callable[[], float]
    _local: threading.local
    _sessions: list[requests.Session]
    _lock: threading.Lock

    # --- sessions -----------------------------------------------------------------

    def _thread_session(self, kind: str) -> requests.Session:
        session: requests.Session | None = getattr(self._local, kind, None)
        if session is None:
            session = requests.Session()
            setattr(self._local, kind, session)
            with self._lock:
                self._sessions.append(session)
        return session

    def _api_session(self) -> requests.Session:
        return self._given_session or self._thread_session("api")

    def _cdn_session(self) -> requests.Session:
        # Always a plain session of our own: a caller's session may carry auth or
        # default headers that must never reach a CDN.
        return self._thread_session("cdn")

    def close(self) -> None:
        """Close the sessions this client opened (not a session passed in)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    # --- transport settings ---------------------------------------------------------

    @property
    def verify(self) -> bool | str:
        """What requests verifies TLS against: never False.

        An explicit ``ca_bundle`` wins; otherwise requests itself honours
        REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (trust_env), and we add SSL_CERT_FILE,
        which requests ignores (it ships certifi's bundle) but OpenSSL users expect.
        """
        if self.ca_bundle:
            return self.ca_bundle
        if not (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")):
            cert_file = os.environ.get("SSL_CERT_FILE")
            if cert_file and os.path.isfile(cert_file):
                return cert_file
        return True

    @staticmethod
    def _proxies_for(url: str) -> dict[str, Any] | None:
        """Loopback traffic never goes through a proxy, even without NO_PROXY.

        requests honours HTTP(S)_PROXY/NO_PROXY itself; on Linux a proxy set
        without NO_PROXY would otherwise receive sandbox (127.0.0.1) traffic.
        None values remove the environment's proxies for this one request.
        """
        if is_loopback_host(urlsplit(url).hostname):
            return {"http": None, "https": None, "all": None}
        return None

    def _auth_headers_for(self, url: str) -> dict[str, str]:
        if _download.origin(url) == self._origin:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _url(self, path: str) -> str:
        return self.base_url + path

    # --- requests with retries --------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
    ) -> tuple[requests.Response, bytes]:
        """Send one API call, retrying what is safe to retry; return a 2xx response and its body.

        ``deadline`` (absolute ``clock()`` value) bounds the retries: a retry whose
        wait would end after it is not made and the last error is raised now.
        """
        retries = self.max_retries if max_retries is None else max_retries
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        send_headers = {"Accept": "application/json", "User-Agent": self.user_agent, **(headers or {})}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                return self._send_once(method, self._url(path), data, send_headers)
            except HiptahError as exc:
                if not is_retryable(exc) or attempt >= retries:
                    raise
                delay = self._retry_delay(exc, attempt)
                if deadline is not None and self._clock() + delay > deadline:
                    log.debug("%s %s: not retrying, the deadline comes first", method, path)
                    raise
                attempt += 1
                log.info("%s %s failed (%s); retry %d/%d in %.2f s", method, path, exc.kind, attempt, retries, delay)
                self._sleep(delay)

    def _retry_delay(self, exc: HiptahError, attempt: int) -> float:
        if exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_cap)
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)

    def _send_once(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[requests.Response, bytes]:
        """One request (plus same-origin redirects); errors mapped to HiptahError types."""
        for _hop in range(MAX_API_REDIRECTS + 1):
            response, body = self._transport(method, url, data, {**headers, **self._auth_headers_for(url)})
            status = response.status_code
            if 200 <= status < 300:
                return response, body
            if status in (301, 302, 303, 307, 308):
                url, method, data = self._redirect_target(response, url, method, data)
                continue
            raise _status_error(response, body)
        raise UnexpectedResponseError(f"The server redirected more than {MAX_API_REDIRECTS} times.")

    def _redirect_target(
        self, response: requests.Response, url: str, method: str, data: bytes | None
    ) -> tuple[str, str, bytes | None]:
        location = response.headers.get("Location")
        request_id = _request_id(response.headers)
        if not location:
            raise UnexpectedResponseError(
                f"The server answered {response.status_code} without a Location.",
                status=response.status_code, request_id=request_id,
            )
        try:
            target = urljoin(url, location)
            target_origin = _download.origin(target)
        except ValueError:  # "https://[" or a port out of range
            raise UnexpectedResponseError(
                f"The server redirected to an invalid address ({location[:80]!r}).",
                status=response.status_code, request_id=request_id,
            ) from None
        if target_origin != self._origin:
            # Following would hand the API key to another host; refuse instead.
            raise UnexpectedResponseError(
                f"The server redirected the request to {urlsplit(target).hostname or 'another address'}, "
                "which is not the configured API host; the API key is not sent there.",
                status=response.status_code, request_id=request_id,
                hint="Check the base URL in the preferences (maybe the service moved to a new address).",
            )
        if response.status_code in (307, 308):
            return target, method, data  # method and body must be kept
        if method != "GET":
            # 301/302/303 would turn a POST into a GET and lose the request.
            raise UnexpectedResponseError(
                f"The server answered {method} with a {response.status_code} redirect.",
                status=response.status_code, request_id=request_id,
            )
        return target, method, data

    def _transport(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[requests.Response, bytes]:
        host = urlsplit(url).hostname
        try:
            response = self._api_session().request(
                method,
                url,
                data=data,
                headers=dict(headers),
                timeout=self.timeout,
                allow_redirects=False,
                verify=self.verify,
                proxies=self._proxies_for(url),
                stream=True,
            )
            with response:
                body = self._read_body(response)
        except requests.exceptions.SSLError as exc:
            raise TLSError(
                f"The TLS certificate of {host} could not be verified ({_ssl_reason(exc)}). "
                "The connection was refused to protect your API key."
            ) from None
        except requests.exceptions.ProxyError as exc:
            raise APIConnectionError(
                f"The proxy refused or failed the connection to {host} ({type(exc).__name__})."
            ) from None
        except requests.exceptions.Timeout as exc:
            phase = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "answer"
            raise APITimeoutError(f"{host} did not {phase} in time.") from None
        except requests.exceptions.RequestException as exc:
            raise APIConnectionError(f"Could not reach {host} ({type(exc).__name__}).") from None
        except ValueError as exc:
            # requests parses a redirect's Location even when not following it; a
            # malformed one ("https://[") raises a bare ValueError.
            raise UnexpectedResponseError(f"{host} sent an answer that cannot be parsed ({exc}).") from None
        log.debug("%s %s -> %d", method, urlsplit(url).path, response.status_code)
        return response, body

    @staticmethod
    def _read_body(response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise UnexpectedResponseError(
                    f"The server's answer is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB; it is not an API response.",
                    status=response.status_code, request_id=_request_id(response.headers),
                )
            chunks.append(chunk)
        # urllib3 2 enforces Content-Length itself; Blender's bundled urllib3 1.26 does
        # not, so a cut answer is caught here (and retried as a connection error).
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if declared.isdigit() and encoding in ("", "identity") and size != int(declared):
            raise APIConnectionError(f"The server's answer was cut short ({size} of {declared} bytes).")
        return b"".join(chunks)
