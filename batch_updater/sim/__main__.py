"""The `ccs-sim` command: run the CCS simulator in the foreground until Ctrl-C.

It prints the base URL, the demo accounts and how to point the client at it, then one line per
request (unless --quiet). Every fault of the simulator is a flag, so a rehearsal can be run
against a slow, throttled or flaky "server" without touching the real one.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .auth import PasswordEncoding
from .requestlog import RequestRecord
from .server import DEFAULT_HOST, DEFAULT_PORT, Simulator
from .settings import KeyCase, RetryAfterFormat, SearchShape, SimSettings, Verification
from .store import DEFAULT_TICKETS, SeedFileError

_print_lock = threading.Lock()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ccs-sim."""
    defaults = SimSettings()
    parser = argparse.ArgumentParser(
        prog="ccs-sim",
        description="Run a local simulator of the Symantec CCS remediation-ticket API "
        "(tokens, PATCH and GET of tickets), with optional latency, throttling and faults.",
        epilog="Example: ccs-sim --port 0 --rate-limit 10 --error-rate 0.05 --seed 1",
    )
    _serving_options(parser.add_argument, defaults)
    _pace_options(parser.add_argument, defaults)
    _fault_options(parser.add_argument, defaults)
    _token_options(parser.add_argument, defaults)
    _reading_options(parser.add_argument, defaults)
    _transport_options(parser.add_argument, defaults)
    return parser


def _serving_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: what is served: the address and the tickets."""
    add("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s, the CCS default)",
    )
    add(
        "--tickets",
        type=_count,
        default=DEFAULT_TICKETS,
        metavar="N",
        help="how many tickets to generate, INCA0000001 on (default: %(default)s)",
    )
    add(
        "--seed-file",
        metavar="FILE",
        help="load the tickets from a YAML or CSV file instead of generating them",
    )
    add("--seed", type=int, metavar="N", help="random seed, to make faults and jitter reproducible")


def _pace_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: how fast it answers, and when it throttles."""
    add(
        "--latency-ms",
        type=_non_negative,
        default=defaults.latency_ms,
        metavar="MS",
        help="delay added to every API answer, in ms (default: %(default)s)",
    )
    add(
        "--jitter-ms",
        type=_non_negative,
        default=defaults.jitter_ms,
        metavar="MS",
        help="random extra delay, uniform between 0 and this, in ms (default: %(default)s)",
    )
    add(
        "--rate-limit",
        type=_positive,
        metavar="PER_SECOND",
        help="answer 429 beyond this many API requests per second (default: no limit)",
    )
    add(
        "--retry-after",
        type=_non_negative,
        default=defaults.retry_after,
        metavar="SECONDS",
        help="the wait a 429 asks for (default: %(default)s)",
    )
    add(
        "--retry-after-format",
        choices=[choice.value for choice in RetryAfterFormat],
        default=defaults.retry_after_format.value,
        help="how a 429 gives Retry-After (default: %(default)s)",
    )


def _fault_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: the faults it injects."""
    add(
        "--error-rate",
        type=_probability,
        default=defaults.error_rate,
        metavar="P",
        help="probability of a 500 with the vendor's message (default: %(default)s)",
    )
    add(
        "--unavailable-rate",
        type=_probability,
        default=defaults.unavailable_rate,
        metavar="P",
        help="probability of a 503 'Service Unavailable' (default: %(default)s)",
    )
    add(
        "--drop-rate",
        type=_probability,
        default=defaults.drop_rate,
        metavar="P",
        help="probability of closing the connection without an answer (default: %(default)s)",
    )
    add(
        "--fail-ticket",
        action="append",
        default=[],
        metavar="NUMBER",
        help="a ticket that always gets 500 (repeat the flag for more)",
    )
    add(
        "--lose-answer",
        action="append",
        default=[],
        metavar="NUMBER",
        help="a ticket whose PATCH is applied, then its answer lost (repeat for more)",
    )
    add(
        "--echo-requests",
        action="store_true",
        help="repeat the request (Authorization header, body) in every error answer, as some "
        "gateways do",
    )


def _token_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: how it issues and checks tokens."""
    add(
        "--password-encoding",
        choices=[choice.value for choice in PasswordEncoding],
        default=defaults.password_encoding.value,
        help="how the token request must carry the password (default: %(default)s)",
    )
    add(
        "--access-token-lifetime",
        type=_positive,
        default=defaults.access_token_lifetime,
        metavar="SECONDS",
        help="access-token lifetime (default: %(default)s)",
    )
    add(
        "--refresh-token-lifetime",
        type=_positive,
        default=defaults.refresh_token_lifetime,
        metavar="SECONDS",
        help="refresh-token lifetime (default: %(default)s)",
    )
    add(
        "--no-expires-in",
        action="store_true",
        help="leave expires_in out of token answers, as the vendor's page shows them",
    )


def _reading_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: how GET and Search answers look (the shapes a client must survive)."""
    add(
        "--key-case",
        choices=[choice.value for choice in KeyCase],
        default=defaults.key_case.value,
        help="spelling of the ticket keys in GET and Search answers: TicketNumber (pascal) or "
        "ticketNumber (camel) (default: %(default)s)",
    )
    add(
        "--search-shape",
        choices=[choice.value for choice in SearchShape],
        default=defaults.search_shape.value,
        help="a Search answer as a bare JSON array (list) or as {TotalCount, Tickets} (wrapped) "
        "(default: %(default)s)",
    )
    add(
        "--max-page-size",
        type=_at_least_one,
        default=defaults.max_page_size,
        metavar="N",
        help="the largest Search PageSize; a larger one gets 400 (default: %(default)s)",
    )
    add(
        "--first-page",
        type=int,
        choices=(0, 1),
        default=defaults.first_page,
        help="the number of the first Search page; with 1, Page=0 also answers the first page "
        "(default: %(default)s)",
    )
    add(
        "--verification",
        choices=[choice.value for choice in Verification],
        default=defaults.verification.value,
        help="what the Remediation Verification job does to a ticket set to 2: nothing (off), "
        "move it to 3 (verified) or to 4 (failed) (default: %(default)s)",
    )
    add(
        "--verification-delay",
        type=_non_negative,
        default=defaults.verification_delay,
        metavar="SECONDS",
        help="how long the verification job takes; 0: done by the next read (default: %(default)s)",
    )


def _transport_options(add: Callable[..., object], defaults: SimSettings) -> None:
    """ccs-sim's options: TLS, and what it prints."""
    add("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    add(
        "--tls-key",
        metavar="FILE",
        help="the certificate's private key (PEM), unless it is in the --tls-cert file",
    )
    add("--quiet", action="store_true", help="do not print a line per request")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:  # NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; use 0 or more")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability; use 0 to 1, e.g. 0.05")
    return value


def _at_least_one(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1; use 1 or more")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; use 0 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ccs-sim; the exit code is 0 after Ctrl-C, 2 if it cannot start."""
    args = build_parser().parse_args(argv)
    if args.tls_key and not args.tls_cert:
        print("ccs-sim: --tls-key needs --tls-cert.", file=sys.stderr)
        return 2
    try:
        sim = Simulator(
            args.host,
            args.port,
            tickets=args.tickets,
            seed_file=args.seed_file,
            seed=args.seed,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
            on_request=None if args.quiet else _print_request,
            **_settings_from(args),
        )
    except (SeedFileError, ValueError, TypeError) as exc:
        print(f"ccs-sim: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"ccs-sim: {exc.filename}: no such file.", file=sys.stderr)
        return 2
    except ssl.SSLError as exc:
        print(
            f"ccs-sim: cannot use the TLS certificate or key: {exc}\n"
            "Tip: --tls-cert takes a PEM certificate (chain); give its key with --tls-key "
            "unless the same file holds it.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(
            f"ccs-sim: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.\n"
            "Tip: choose another --port, or --port 0 for any free one.",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # Stop cleanly when a supervisor or a test terminates us, as on Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        _print_banner(sim, args)
        # A timed wait, not a bare one: Ctrl-C must get through on Windows too.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    _say("ccs-sim: stopped.")
    return 0


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "rate_limit": args.rate_limit,
        "retry_after": args.retry_after,
        "retry_after_format": args.retry_after_format,
        "error_rate": args.error_rate,
        "unavailable_rate": args.unavailable_rate,
        "drop_rate": args.drop_rate,
        "fail_tickets": args.fail_ticket,
        "lost_answer_tickets": args.lose_answer,
        "password_encoding": args.password_encoding,
        "access_token_lifetime": args.access_token_lifetime,
        "refresh_token_lifetime": args.refresh_token_lifetime,
        "echo_requests": args.echo_requests,
        "token_expires_in": not args.no_expires_in,
        "key_case": args.key_case,
        "search_shape": args.search_shape,
        "max_page_size": args.max_page_size,
        "first_page": args.first_page,
        "verification": args.verification,
        "verification_delay": args.verification_delay,
    }


def _print_banner(sim: Simulator, args: argparse.Namespace) -> None:
    settings = sim.settings
    numbers = sim.store.numbers()
    span = f": {numbers[0]} .. {numbers[-1]}" if numbers else ""
    lines = [f"CCS simulator listening on {sim.url}", f"  {len(numbers)} tickets{span}"]
    encoding = settings.password_encoding
    how = "Base64-encoded" if encoding is PasswordEncoding.BASE64 else "as typed"
    lines.append(f"  Demo accounts (the token request sends the password {how}):")
    tickets = sim.tickets()
    for user in sim.users:
        if not user.remediation_admin:
            note = "no Remediation Administrator role: every ticket request gets 403"
        else:
            denied = [t["TicketNumber"] for t in tickets if not user.may_access(t)]
            note = "Remediation Administrator"
            if denied:
                standards = ", ".join(sorted(user.denied_standards | user.denied_assets))
                note += (
                    f"; no permission on {standards}: {len(denied)} tickets get 403"
                    f" ({denied[0]} .. {denied[-1]})"
                )
        lines.append(f"    {user.name:<16} password {user.password:<16} {note}")
    lines.append(f"  Faults: {_describe_faults(settings)}")
    lines.append(f"  Answers: {_describe_answers(settings)}")
    lines += [
        "Point the client at it:",
        f"  export CCS_URL={sim.url}",
        f'  (PowerShell: $env:CCS_URL = "{sim.url}")',
        "Press Ctrl-C to stop.",
    ]
    _say("\n".join(lines))


def _describe_faults(settings: SimSettings) -> str:
    parts = []
    if settings.latency_ms:
        parts.append(f"latency {settings.latency_ms:g} ms")
    if settings.jitter_ms:
        parts.append(f"jitter 0-{settings.jitter_ms:g} ms")
    if settings.rate_limit is not None:
        parts.append(
            f"rate limit {settings.rate_limit:g}/s (429, Retry-After {settings.retry_after:g} s "
            f"as {settings.retry_after_format.value})"
        )
    for name, label in (
        ("error_rate", "500"),
        ("unavailable_rate", "503"),
        ("drop_rate", "dropped connections"),
    ):
        if getattr(settings, name):
            parts.append(f"{label} {getattr(settings, name):.0%}")
    if settings.fail_tickets:
        parts.append(f"always 500: {', '.join(sorted(settings.fail_tickets))}")
    return "; ".join(parts) or "none"


def _describe_answers(settings: SimSettings) -> str:
    pascal = settings.key_case is KeyCase.PASCAL
    keys = "TicketNumber..." if pascal else "ticketNumber..."
    shape = "a bare list"
    if settings.search_shape is SearchShape.WRAPPED:
        shape = "{TotalCount, Tickets}" if pascal else "{totalCount, tickets}"
    outcome = settings.verification.outcome
    job = "off" if outcome is None else f"2 -> {outcome} after {settings.verification_delay:g} s"
    return (
        f"keys {keys}; Search {shape}, pages from {settings.first_page}, "
        f"PageSize up to {settings.max_page_size}; verification job {job}"
    )


def _print_request(record: RequestRecord) -> None:
    clock = time.strftime("%H:%M:%S", time.localtime(record.wall))
    target = record.path + (f"?{record.query}" if record.query else "")
    ticket = f" {record.ticket}" if record.ticket and record.method == "PATCH" else ""
    outcome = "dropped" if record.status is None else str(record.status)
    fault = f" [{record.fault}]" if record.fault else ""
    _say(
        f"{clock} {record.method:<5} {target}{ticket} {record.user or '-'}"
        f" -> {outcome}{fault} ({record.elapsed * 1000:.2f} ms)"
    )


def _say(text: str) -> None:
    # Request lines come from many threads at once; one lock keeps them whole.
    with _print_lock:
        print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
