"""The CCS REST API client: tokens, one ticket update, one ticket read, and error messages.

It knows HTTP and the CCS API, nothing of spreadsheets and nothing of retries: it sends one
request and says what came back as a `Reply`. The one thing it repeats on its own is a request
that got a 401: it gets a new token (refresh grant, then password grant) and re-sends, as the
contract asks. Tokens are renewed before they run out (the token answer's `expires_in`, else the
configured lifetime), and a 401 counts as "credentials refused" (AuthError, which stops the run)
only for a new token that the server refused at once, well within its lifetime: a token that
simply ran out, or that served before and stopped working, is renewed and the request re-sent.

requests is imported here and nowhere else. Each worker thread gets its own Session (a Session
has no documented thread-safety contract); the token is shared by all of them under a lock.

Modules: `client` (CcsClient and its tokens), `exchange` (an answer or a failed send as a
Reply, a failed token request as an error), `answers` (Reply, messages, bodies, reasons),
`shapes` (the tickets of a Search answer, in each shape a server may give them).
"""

from .answers import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_LENGTH,
    Reply,
    _seconds,
    describe_status,
    encode_password,
    extract_message,
    parse_retry_after,
)
from .client import (
    CREDENTIALS_REFUSED,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_LIFETIME,
    MAX_SENDS,
    TICKET_QUERY_PATH,
    TICKETS_PATH,
    TOKEN_PATH,
    USER_AGENT,
    CcsClient,
    SecretLike,
)
from .shapes import AnswerShapeError, SearchPage, ticket_in_answer, tickets_in

__all__ = [
    "CREDENTIALS_REFUSED",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_BODY_BYTES",
    "MAX_MESSAGE_LENGTH",
    "MAX_SENDS",
    "TICKETS_PATH",
    "TICKET_QUERY_PATH",
    "TOKEN_PATH",
    "USER_AGENT",
    "AnswerShapeError",
    "CcsClient",
    "Reply",
    "SearchPage",
    "SecretLike",
    "_seconds",
    "describe_status",
    "encode_password",
    "extract_message",
    "parse_retry_after",
    "ticket_in_answer",
    "tickets_in",
]
