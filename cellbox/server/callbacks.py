"""Judge0's ``callback_url``: when a submission is done, its result is sent there with PUT, as
JSON in Judge0's default fields, base64-encoded (as Judge0 does), tried up to
``CALLBACK_TRIES`` times. The embedded server sends it; with a broker, the worker that ran it.
Which URLs a submission may name is ``judge0.callback_problem``'s to say; redirects are not
followed, for the same reason (the request comes from the server).
"""

from __future__ import annotations

import json
import logging

import httpx

from cellbox.server.judge0 import CALLBACK_TIMEOUT, CALLBACK_TRIES, DEFAULT_FIELDS, to_json
from cellbox.server.records import Record

log = logging.getLogger(__name__)


def deliver(rec: Record) -> bool:
    """PUT the record's Judge0 answer to its callback_url; True once a try got an answer
    (any status, as Judge0). Never raises: a dead callback must not fail the submission."""
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
