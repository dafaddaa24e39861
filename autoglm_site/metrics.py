"""Prometheus metrics: every metric object of the product, defined once, and the /metrics scrape.

Multi-process: each process (every Daphne, a Celery worker and its children, a management
command) writes its samples to memory-mapped files in settings.PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode) and /metrics, served by any one process, adds up those of
every process on the machine. Counters and histograms of a process that died are kept (totals
never go backwards while the service runs); its gauges are dropped at the next scrape. When a
process starts and no process that wrote to the directory is alive any more, the whole
service was stopped: the old files are removed (a counter reset, which Prometheus expects after
a restart). The directory is per machine; processes of another PID namespace (another container)
must not share it.

Time is in seconds (the Prometheus convention); buckets are chosen for the values seen here
(milliseconds to a few seconds). Label values are short names from a fixed set, never free text,
ids or URLs with query strings: each value is a new time series.

Labels used below:
    backend        the backend that answered: "openai" (a vLLM replica), "local" (the CPU
                   model), "fake" (tests, the bench), "fallback" (the knowledge-base answer)
    replica        the endpoint within the backend, as /readyz names it (e.g. "vllm-0:8000");
                   "local" for the CPU model, "-" where there is none
    finish_reason  why a reply ended: "stop", "length" (a max_tokens cut), "fallback",
                   "echo", "language", "loop", "content_filter", "cancelled", "error", ...
    code           an error code (the `code` of an error frame sent to a client, e.g.
                   "rate_limited", "message_too_long", "invalid_frame", or a server-side
                   failure such as "backend_timeout")
    queue          the name of a queue of this process (e.g. "engine", "socket_threads",
                   "reply_threads")
    status         a finished sync run's status: "succeeded", "partial", "failed"
    outcome        a second opinion's: "agreed", "disagreed"

The metrics (Python name: exposed name, type, labels; what it measures):

    MESSAGE_ACK_SECONDS: autoglm_message_ack_seconds, histogram
        From a visitor's message frame received by the consumer to its ack sent (the message
        stored). The goal is p99 <= 50 ms.
    REPLY_FIRST_DELTA_SECONDS: autoglm_reply_first_delta_seconds, histogram
        From the visitor's message stored to the reply's first text sent to the conversation's
        group: what a visitor waits for (retrieval, prompt, queueing, the backend's first token).
    REPLY_FIRST_TOKEN_SECONDS: autoglm_reply_first_token_seconds, histogram {backend, replica}
        From the request sent to the backend to its first text: the backend's own time to first
        token (vLLM's TTFT plus the network).
    REPLY_DURATION_SECONDS: autoglm_reply_duration_seconds, histogram {backend, replica}
        From the request sent to the backend to the end of its stream. Tokens per second of
        generation = rate(completion tokens) / rate(this histogram's _sum).
    REPLY_COMPLETION_TOKENS: autoglm_reply_completion_tokens_total, counter {backend, replica}
        Tokens generated (usage.completion_tokens as the backend reports it).
    REPLY_PROMPT_TOKENS: autoglm_reply_prompt_tokens_total, counter {backend, replica}
        Prompt tokens sent (usage.prompt_tokens).
    REPLY_CACHED_PROMPT_TOKENS: autoglm_reply_cached_prompt_tokens_total, counter
        {backend, replica}
        Of those, the tokens the backend found in its prefix cache (vLLM's
        usage.prompt_tokens_details.cached_tokens, with --enable-prompt-tokens-details). The
        prefix-cache hit rate is this / REPLY_PROMPT_TOKENS.
    REPLIES: autoglm_replies_total, counter {backend, finish_reason}
        Replies finished, by who answered and why they ended.
    REPLIES_STREAMING: autoglm_replies_streaming, gauge (sum over live processes)
        Replies being generated now.
    SOCKETS_ACTIVE: autoglm_sockets_active, gauge (sum over live processes)
        Chat WebSockets open now.
    QUEUE_DEPTH: autoglm_queue_depth, gauge {queue} (sum over live processes)
        Items waiting in a queue of this process; each process sets its own depth and the
        depths of the live processes are added up.
    CHANNEL_LAYER_SEND_SECONDS: autoglm_channel_layer_send_seconds, histogram
        One send or group_send to the channel layer (Redis in production).
    ERRORS: autoglm_errors_total, counter {code}
        Errors by code.
    KNOWLEDGE_SEARCH_SECONDS: autoglm_knowledge_search_seconds, histogram
        One knowledge.search.chunk_search call (keyword and vector sides, fusion, snippets).
    KNOWLEDGE_SECOND_OPINIONS: autoglm_knowledge_second_opinions_total, counter {outcome}
        Searches whose best hit was checked by the secondary embedder
        (knowledge.search.second_opinion_needed): "agreed" (it stayed relevant) or
        "disagreed" (nothing was relevant).
    KNOWLEDGE_SYNC_RUNS: autoglm_knowledge_sync_runs_total, counter {status}
        Source sync runs finished, by status (counted when a SyncRun is saved with a finished
        status for the first time, after commit).
    KNOWLEDGE_SYNC_ITEM_FAILURES: autoglm_knowledge_sync_item_failures_total, counter
        Items (pages, articles, files) that failed in finished sync runs (SyncRun.failed).

Call sites stay one line:

    with metrics.timed(metrics.CHANNEL_LAYER_SEND_SECONDS):    # or @metrics.timed(...) on a
        await layer.group_send(group, event)                    # plain (not async) function
    metrics.observe_since(metrics.MESSAGE_ACK_SECONDS, received)  # received = time.monotonic()
    metrics.REPLY_FIRST_TOKEN_SECONDS.labels(backend="openai", replica="vllm-0:8000").observe(s)
    with metrics.REPLIES_STREAMING.track_inprogress(): ...
    metrics.QUEUE_DEPTH.labels(queue="engine").set(depth)
    metrics.ERRORS.labels(code="rate_limited").inc()
    metrics.reply_record(backend=..., replica=..., finish_reason=..., usage numbers...)
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

# prometheus_client chooses where values live (per-process files, or memory) when it is first
# imported, from the PROMETHEUS_MULTIPROC_DIR variable: the settings set it, so they are loaded
# before the import, and the directory must exist before the first metric below is created.
_DIRECTORY = Path(settings.PROMETHEUS_MULTIPROC_DIR)
try:
    _DIRECTORY.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={str(_DIRECTORY)!r} cannot be created: {exc}"
    ) from exc

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder  # noqa: E402

if not getattr(values.ValueClass, "_multiprocess", False):
    raise ImproperlyConfigured(
        "prometheus_client was imported before the settings set PROMETHEUS_MULTIPROC_DIR: each "
        "process would count alone. Load the Django settings before importing it."
    )


def _pid_of(path: Path) -> int | None:
    """The writer of a value file: counter_123.db, gauge_livesum_123.db -> 123."""
    pid = path.stem.rpartition("_")[2]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def dead_processes_forget(directory: Path, *, starting: bool = False) -> None:
    """Drop the gauges of processes that died; at a start with no writer alive, every old file.

    STARTING: this process has written nothing yet, so files bearing its pid were left by an
    earlier process that had the same pid.
    """
    files: dict[int, list[Path]] = {}
    for path in directory.glob("*.db"):
        pid = _pid_of(path)
        if pid is not None:
            files.setdefault(pid, []).append(path)
    me = os.getpid()
    dead = {pid for pid in files if (starting and pid == me) or (pid != me and not _alive(pid))}
    if starting and dead == set(files):
        for pid in dead:
            for path in files[pid]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))


dead_processes_forget(_DIRECTORY, starting=True)

# --- The metrics ----------------------------------------------------------------------------
_ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20)
_FIRST_DELTA_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30)
_DURATION_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 180)
_SEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_SEARCH_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5)
_BACKEND = ("backend", "replica")

MESSAGE_ACK_SECONDS = Histogram(
    "autoglm_message_ack_seconds",
    "From a visitor's message frame received to its ack sent (the message stored).",
    buckets=_ACK_BUCKETS,
)
REPLY_FIRST_DELTA_SECONDS = Histogram(
    "autoglm_reply_first_delta_seconds",
    "From the visitor's message stored to the reply's first text sent to its group.",
    buckets=_FIRST_DELTA_BUCKETS,
)
REPLY_FIRST_TOKEN_SECONDS = Histogram(
    "autoglm_reply_first_token_seconds",
    "From the request sent to the backend to its first text (the backend's TTFT).",
    _BACKEND,
    buckets=_FIRST_TOKEN_BUCKETS,
)
REPLY_DURATION_SECONDS = Histogram(
    "autoglm_reply_duration_seconds",
    "From the request sent to the backend to the end of its stream.",
    _BACKEND,
    buckets=_DURATION_BUCKETS,
)
REPLY_COMPLETION_TOKENS = Counter(
    "autoglm_reply_completion_tokens_total", "Tokens generated (usage.completion_tokens).", _BACKEND
)
REPLY_PROMPT_TOKENS = Counter(
    "autoglm_reply_prompt_tokens_total", "Prompt tokens sent (usage.prompt_tokens).", _BACKEND
)
REPLY_CACHED_PROMPT_TOKENS = Counter(
    "autoglm_reply_cached_prompt_tokens_total",
    "Prompt tokens found in the backend's prefix cache (usage.prompt_tokens_details).",
    _BACKEND,
)
REPLIES = Counter(
    "autoglm_replies_total",
    "Replies finished, by backend and finish reason.",
    ("backend", "finish_reason"),
)
REPLIES_STREAMING = Gauge(
    "autoglm_replies_streaming", "Replies being generated now.", multiprocess_mode="livesum"
)
SOCKETS_ACTIVE = Gauge(
    "autoglm_sockets_active", "Chat WebSockets open now.", multiprocess_mode="livesum"
)
QUEUE_DEPTH = Gauge(
    "autoglm_queue_depth",
    "Items waiting in a queue (each process's own, added up).",
    ("queue",),
    multiprocess_mode="livesum",
)
CHANNEL_LAYER_SEND_SECONDS = Histogram(
    "autoglm_channel_layer_send_seconds",
    "One send or group_send to the channel layer.",
    buckets=_SEND_BUCKETS,
)
ERRORS = Counter("autoglm_errors_total", "Errors by code.", ("code",))
KNOWLEDGE_SEARCH_SECONDS = Histogram(
    "autoglm_knowledge_search_seconds", "One knowledge search.", buckets=_SEARCH_BUCKETS
)
KNOWLEDGE_SECOND_OPINIONS = Counter(
    "autoglm_knowledge_second_opinions_total",
    "Searches whose best hit the secondary embedder checked, by outcome.",
    ("outcome",),
)
KNOWLEDGE_SYNC_RUNS = Counter(
    "autoglm_knowledge_sync_runs_total", "Source sync runs finished, by status.", ("status",)
)
KNOWLEDGE_SYNC_ITEM_FAILURES = Counter(
    "autoglm_knowledge_sync_item_failures_total", "Items that failed in finished sync runs."
)


# --- Helpers for call sites -----------------------------------------------------------------
@contextlib.contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the seconds the block (or the decorated plain function) took, even if it raised.

    As a decorator it times plain functions only: on an `async def` it would time the creation
    of the coroutine; inside one, use `with timed(...)` around the awaits instead.
    """
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def observe_since(histogram: Histogram, started: float) -> None:
    """Observe the seconds since STARTED, a time.monotonic() reading."""
    histogram.observe(max(0.0, time.monotonic() - started))


def reply_record(
    *,
    backend: str,
    replica: str,
    finish_reason: str,
    prompt_tokens: int | None = None,
    cached_prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    duration_seconds: float | None = None,
) -> None:
    """Count one finished reply and its usage (None: the backend did not report it)."""
    REPLIES.labels(backend=backend, finish_reason=finish_reason).inc()
    if prompt_tokens:
        REPLY_PROMPT_TOKENS.labels(backend=backend, replica=replica).inc(prompt_tokens)
    if cached_prompt_tokens:
        REPLY_CACHED_PROMPT_TOKENS.labels(backend=backend, replica=replica).inc(
            cached_prompt_tokens
        )
    if completion_tokens:
        REPLY_COMPLETION_TOKENS.labels(backend=backend, replica=replica).inc(completion_tokens)
    if duration_seconds is not None:
        REPLY_DURATION_SECONDS.labels(backend=backend, replica=replica).observe(duration_seconds)


# --- Knowledge sync runs --------------------------------------------------------------------
_COUNTED_STATUS = "_metrics_counted_status"
_FINISHED_STATUSES: set[str] = set()  # SyncRun's statuses but "running" (filled at connect)


def _sync_run_loaded(sender: type, instance: Any, **kwargs: Any) -> None:
    # The status the row had when loaded (or created): saving it again counts nothing.
    instance.__dict__[_COUNTED_STATUS] = instance.__dict__.get("status")


def _sync_run_saved(
    sender: type, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any
) -> None:
    status = instance.__dict__.get("status")
    # A row created finished (an import's record) counts once; a finished row saved again, not.
    before = None if created else instance.__dict__.get(_COUNTED_STATUS)
    if raw or status == before:
        return
    instance.__dict__[_COUNTED_STATUS] = status
    if status not in _FINISHED_STATUSES:
        return
    failed = int(instance.failed or 0)

    def count() -> None:
        KNOWLEDGE_SYNC_RUNS.labels(status=status).inc()
        if failed:
            KNOWLEDGE_SYNC_ITEM_FAILURES.inc(failed)

    transaction.on_commit(count, using=kwargs.get("using"))


def sync_run_signals_connect() -> None:
    """Count finished sync runs (knowledge's AppConfig.ready calls this once models exist)."""
    from django.db.models.signals import post_init, post_save

    from knowledge.models import SyncRun

    _FINISHED_STATUSES.update(str(s) for s in SyncRun.Status if s != SyncRun.Status.RUNNING)
    for status in _FINISHED_STATUSES:
        KNOWLEDGE_SYNC_RUNS.labels(status=status)  # every status is exported from 0
    post_init.connect(_sync_run_loaded, sender=SyncRun, dispatch_uid="metrics-sync-run-loaded")
    post_save.connect(_sync_run_saved, sender=SyncRun, dispatch_uid="metrics-sync-run-saved")


# --- The scrape -----------------------------------------------------------------------------
_FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def scrape_admitted(*, authorization: str, remote_addr: str, forwarded: bool) -> bool:
    """Whether a scrape may read the metrics: the bearer METRICS_TOKEN, or an allowed address.

    FORWARDED: the request came through a proxy (it carries a forwarding header), so its peer
    address is the proxy's, not the client's: only the token admits it then.
    """
    token: str = settings.METRICS_TOKEN
    scheme, _, presented = authorization.partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    ):
        return True
    if forwarded:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


def forwarded(headers: Any) -> bool:
    """Whether request headers say a proxy forwarded the request."""
    return any(headers.get(name) for name in _FORWARDING_HEADERS)


def scrape(*, accept: str) -> tuple[bytes, str]:
    """The metrics of every process on this machine, in the format ACCEPT asks for (the
    Prometheus text format unless it asks for OpenMetrics), and its content type."""
    directory = Path(settings.PROMETHEUS_MULTIPROC_DIR)
    dead_processes_forget(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
