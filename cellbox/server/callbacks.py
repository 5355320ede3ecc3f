"""Judge0's ``callback_url``: when a submission is done, its result is sent there with PUT, as
JSON in Judge0's default fields, base64-encoded (as Judge0 does), tried up to
``CALLBACK_TRIES`` times. The embedded server sends it; with a broker, the worker that ran it.

The server makes that request, so a URL may name only loopback or a host the admin listed in
``callback_hosts``: otherwise a submission could make the server reach any host on its
network (SSRF). Redirects are not followed, for the same reason.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import httpx

from cellbox.server.config import is_loopback
from cellbox.server.errors import ApiError
from cellbox.server.records import Record

CALLBACK_TRIES = 3  # Judge0's CALLBACKS_MAX_TRIES
CALLBACK_TIMEOUT = 5.0  # seconds per try, Judge0's CALLBACKS_TIMEOUT
MAX_URL = 2048

log = logging.getLogger(__name__)


def check_url(url: str, allowed_hosts: tuple[str, ...]) -> None:
    """422 unless ``url`` is http(s) to loopback or to one of ``allowed_hosts``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise ApiError(422, f"callback_url is not a valid URL: {e}") from None
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, f"callback_url must be an http or https URL with a host, at most "
                       f"{MAX_URL} characters")
    if not (is_loopback(host) or host in allowed_hosts):
        raise ApiError(422, f"callback_url host {host!r} is not allowed: this server calls "
                       "back only to loopback and to the hosts its admin lists in "
                       "callback_hosts")


def deliver(rec: Record) -> bool:
    """PUT the record's Judge0 answer to its callback_url; True once a try got an answer
    (any status, as Judge0). Never raises: a dead callback must not fail the submission."""
    from cellbox.server.judge0 import DEFAULT_FIELDS, to_json  # judge0 imports this module

    url = str(rec.request["callback_url"])
    body = json.dumps(to_json(rec, True, DEFAULT_FIELDS))
    for _ in range(CALLBACK_TRIES):
        try:
            httpx.put(url, content=body, headers={"content-type": "application/json"},
                      timeout=CALLBACK_TIMEOUT, follow_redirects=False)
            return True
        except httpx.HTTPError as e:
            log.warning("callback for %s to %s failed: %s", rec.id, url, e)
    return False
