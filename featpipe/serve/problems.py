"""The one exception the service's handlers raise to answer with an error.

A :class:`Problem` becomes a JSON body ``{"error": "one line"}`` with its
status code and headers; ``reason`` names the rejection in the
``featpipe_rejections_total`` metric. Anything else that escapes a handler is
a 500 with a generic body (the traceback goes to the log, never to the
client).
"""

RETRY_AFTER_SECONDS = 1
"""``Retry-After`` sent with every 503: a full queue drains within about a second at the batch rates measured."""


class Problem(Exception):
    """An error answer: HTTP status, one-line message, extra headers, metric reason.

    Parameters
    ----------
    status : int
        HTTP status code.
    message : str
        What went wrong, one line, safe to show the client.
    reason : str or None
        Label of ``featpipe_rejections_total``; default derived from the status.
    headers : dict or None
        Extra response headers (``Retry-After`` is added to every 503).
    """

    def __init__(self, status, message, reason=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())
        self.reason = reason or _DEFAULT_REASONS.get(status, f"status_{status}")
        self.headers = dict(headers or {})
        if status == 503:
            self.headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))


_DEFAULT_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    408: "body_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_image",
    503: "unavailable",
}
