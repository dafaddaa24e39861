"""Knowledge sync through real Celery processes (worker, beat) on the Redis broker.

The worker runs against this run's test database; the pages come from a loopback HTTP server in
this process. A sync is killed with SIGKILL mid-run (the whole worker, or only its pool process),
delivered again and finished; failures retry with backoff and show in the admin.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TypeVar
from unittest import mock

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from knowledge.models import Article, Chunk, Source, SyncRun
from knowledge.services import source_sync
from tests.knowledge.conftest import LoopbackSite, Page
from tests.knowledge.test_admin_and_commands import changelist_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
# Generous: two cores shared with the test process and PostgreSQL, and each worker process loads
# Django and the embedding models from cold.
DEADLINE = 180.0
T = TypeVar("T")


def _until(what: str, check: Callable[[], T | None], *logs: CeleryProcess) -> T:
    """Poll CHECK until it returns something truthy; fail naming WHAT, with the processes' logs."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.output()[-4000:]}" for log in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.2)


class CeleryProcess:
    """`celery -A autoglm_site <command>` in a session of its own, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "autoglm_site", *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pool processes share its group: one kill ends all
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def pool_pids(self) -> list[int]:
        threads = Path(f"/proc/{self.process.pid}/task").iterdir()
        return [int(pid) for thread in threads for pid in (thread / "children").read_text().split()]

    def kill(self) -> None:
        """SIGKILL the process and everything it started, as a crash or the OOM killer would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


@dataclass
class Celery:
    """Starts workers and beat against the test database and a Redis broker; kills them all."""

    broker_url: str
    base_env: dict[str, str]
    folder: Path
    processes: list[CeleryProcess]

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.base_env, **extra}

    def worker(self, name: str, *, visibility_timeout: int, **extra: str) -> CeleryProcess:
        worker = CeleryProcess(
            name,
            [
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname={name}@%h",
            ],
            self.env(CELERY_VISIBILITY_TIMEOUT_SECONDS=str(visibility_timeout), **extra),
            self.folder / f"{name}.log",
        )
        self.processes.append(worker)
        _until(f"worker {name} to be ready", lambda: " ready." in worker.output(), worker)
        return worker

    def beat(self, **extra: str) -> CeleryProcess:
        beat = CeleryProcess(
            "beat",
            [
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.folder / 'beat-schedule'}",
                f"--pidfile={self.folder / 'beat.pid'}",
            ],
            self.env(**extra),
            self.folder / "beat.log",
        )
        self.processes.append(beat)
        return beat

    def send_sync(self, source: Source) -> str:
        """Enqueue the sync of SOURCE on the broker, as the admin's "Sync now" does; its id."""
        from autoglm_site.celery import app
        from knowledge.tasks import sync_source

        with app.connection_for_write(self.broker_url) as broker:
            result = sync_source.apply_async(
                kwargs={"source_id": source.pk, "trigger": SyncRun.Trigger.MANUAL},
                connection=broker,
            )
        return str(result.id)

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url)

    def idle(self) -> bool:
        """No task waiting in the queue or delivered and not yet acknowledged, three polls
        running (a message is briefly in neither while a worker takes it)."""
        client = self.broker()
        for _poll in range(3):
            queued = sum(
                client.llen(key) for key in client.keys("celery*") if client.type(key) == b"list"
            )
            if queued or client.zcard("unacked_index") or client.hlen("unacked"):
                return False
            time.sleep(0.3)
        return True


@pytest.fixture
def celery(redis_url: str, transactional_db: None, tmp_path: Path) -> Iterator[Celery]:
    broker_url = redis_url  # the fixture emptied it: no task of an earlier test is left
    database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@/{database}?host={django_settings.EMBEDDED_PG_DIR}",
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,
        "BACKGROUND_IN_PROCESS": "false",
        "SECRET_KEY": "celery-worker-test-secret-key-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "INFO",
        # A page held back by the test must not time out before the test kills the worker.
        "KNOWLEDGE_FETCH_TIMEOUT_SECONDS": "300",
        "KNOWLEDGE_FETCH_DEADLINE_SECONDS": "300",
        # The pages come from a loopback server.
        "KNOWLEDGE_FETCH_ALLOW_PRIVATE": "true",
    }
    manager = Celery(broker_url, env, tmp_path, [])
    try:
        yield manager
    finally:
        for process in manager.processes:
            process.kill()
        redis.Redis.from_url(broker_url).flushdb()


def page(title: str, text: str) -> Page:
    return Page(
        f"<html><head><title>{title}</title></head><body><p>{text}</p></body></html>".encode()
    )


def sitemap(site: LoopbackSite, entries: list[tuple[str, str]]) -> Page:
    urls = "".join(
        f"<url><loc>{site.url(path)}</loc><lastmod>{lastmod}</lastmod></url>"
        for path, lastmod in entries
    )
    xml = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    return Page(xml.encode(), content_type="application/xml")


def chunk_rows(source: Source) -> list[tuple[str, str, int, str]]:
    """Every chunk of SOURCE's articles (duplicates would show twice), in a stable order."""
    return sorted(
        Chunk.objects.filter(article__source=source).values_list(
            "article__external_id", "language", "position", "content_hash"
        )
    )


def runs_of(source: Source) -> list[SyncRun]:
    return list(SyncRun.objects.filter(source=source).order_by("pk"))


def held_back(gate: threading.Event, served: Page) -> Callable[[BaseHTTPRequestHandler], Page]:
    """A page that is served only once GATE opens: the sync is in the middle of fetching it."""

    def serve(_handler: BaseHTTPRequestHandler) -> Page:
        gate.wait(timeout=DEADLINE)
        return served

    return serve


@pytest.mark.parametrize("killed", ["worker", "pool process"])
def test_a_sync_killed_mid_run_is_delivered_again_and_leaves_exactly_a_clean_syncs_chunks(
    site: LoopbackSite, celery: Celery, killed: str
) -> None:
    # Before: a clean sync of three pages.
    site.pages["/a"] = page("Billing", "Invoices are emailed monthly.")
    site.pages["/b"] = page("Sharing", "Share folders with your team.")
    site.pages["/old"] = page("Legacy plans", "The legacy plans ended in 2020.")
    site.pages["/sitemap.xml"] = sitemap(
        site, [("/a", "2026-01-01"), ("/b", "2026-01-01"), ("/old", "2026-01-01")]
    )
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )
    before = source_sync(source_id=source.pk)
    assert before is not None and (before.status, before.added) == (SyncRun.Status.SUCCEEDED, 3)
    old_chunks = Chunk.objects.filter(article__external_id=site.url("/old")).count()
    assert old_chunks >= 1

    # The site changes: /a is rewritten, /old goes, /c and /d are new; /c hangs until the test
    # has killed the worker that fetches it.
    gate = threading.Event()
    site.pages["/a"] = page("Billing", "Invoices are emailed every week now.")
    site.pages["/c"] = held_back(gate, page("Storage", "Each plan has a storage quota."))
    site.pages["/d"] = page("Security", "Two-factor sign-in is available on every plan.")
    site.pages["/sitemap.xml"] = sitemap(
        site,
        [("/a", "2026-02-01"), ("/b", "2026-01-01"), ("/c", "2026-02-01"), ("/d", "2026-02-01")],
    )
    site.requests.clear()
    visibility_timeout = 2
    first = celery.worker("first", visibility_timeout=visibility_timeout)
    try:
        task_id = celery.send_sync(source)
        cut = _until(
            "the worker to be fetching /c, with /a and /b done",
            lambda: (
                any(path == "/c" for path, _headers in list(site.requests))
                and SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).first()
            ),
            first,
        )
        assert (cut.done, cut.total, cut.updated, cut.unchanged) == (2, 4, 1, 1)
        if killed == "worker":
            first.kill()
            # The task is still the broker's, delivered and never acknowledged.
            unacked = celery.broker().zrange("unacked_index", 0, -1, withscores=True)
            assert len(unacked) == 1
            # Redis gives it out again once the visibility timeout has passed since its
            # delivery; a worker looks for such tasks as it starts.
            while time.time() < unacked[0][1] + visibility_timeout + 0.5:
                time.sleep(0.1)
            gate.set()
            finisher = celery.worker("second", visibility_timeout=visibility_timeout)
        else:
            (pool_pid,) = first.pool_pids()
            os.kill(pool_pid, signal.SIGKILL)
            gate.set()
            finisher = first
        _until(
            "the task to be delivered again and to succeed",
            lambda: f"Task knowledge.tasks.sync_source[{task_id}] succeeded" in finisher.output(),
            first,
            finisher,
        )
        _until("the broker to hold no task", celery.idle, finisher)
    finally:
        gate.set()

    assert f"Task knowledge.tasks.sync_source[{task_id}] received" in finisher.output()
    if killed == "pool process":
        assert "WorkerLostError" in first.output()
    runs = runs_of(source)
    assert [run.pk for run in runs[:2]] == [before.pk, cut.pk] and len(runs) == 3
    abandoned, finished = runs[1], runs[2]
    # The run the dead worker left "running" is closed as failed, with what it had done.
    assert abandoned.status == SyncRun.Status.FAILED
    assert abandoned.finished_at is not None and abandoned.finished_at <= finished.started_at
    assert (abandoned.done, abandoned.updated, abandoned.unchanged, abandoned.added) == (2, 1, 1, 0)
    assert abandoned.errors[-1]["item"] == "Help"
    assert "The worker stopped before this run finished" in abandoned.errors[-1]["error"]
    # The run of the task delivered again did the rest, and only the rest.
    assert finished.status == SyncRun.Status.SUCCEEDED, finished.errors
    assert finished.trigger == SyncRun.Trigger.MANUAL
    assert (
        finished.total,
        finished.done,
        finished.added,
        finished.updated,
        finished.unchanged,
        finished.deleted,
        finished.failed,
    ) == (4, 4, 2, 0, 2, 1, 0)
    assert finished.chunks_deleted == old_chunks
    assert finished.errors == []

    # Exactly the chunks a clean sync of the new site gives: each article's once, the rewritten
    # /a's new text, nothing of /old.
    after = chunk_rows(source)
    pages = {site.url(path) for path in ("/a", "/b", "/c", "/d")}
    assert {external_id for external_id, *_rest in after} == pages
    assert not Article.objects.filter(external_id=site.url("/old")).exists()
    assert "every week" in Chunk.objects.get(article__external_id=site.url("/a")).text
    Article.objects.filter(source=source).delete()
    clean = source_sync(source_id=source.pk)
    assert clean is not None and (clean.status, clean.added) == (SyncRun.Status.SUCCEEDED, 4)
    assert chunk_rows(source) == after
    new_pages = {site.url("/c"), site.url("/d")}
    assert finished.chunks_embedded == len([row for row in after if row[0] in new_pages])


_RETRY_LINE = re.compile(
    r"Task knowledge\.tasks\.sync_source\[([0-9a-f-]+)\] retry: Retry in (\d+)s"
)


def test_a_failed_sync_retries_with_backoff_and_each_attempt_shows_in_the_admin(
    site: LoopbackSite, celery: Celery, admin_client: Client
) -> None:
    down_hits: list[int] = []
    flaky_hits: list[int] = []

    def down(_handler: BaseHTTPRequestHandler) -> Page:
        down_hits.append(1)
        return Page(b"busy", content_type="text/plain", status=503)

    def flaky(_handler: BaseHTTPRequestHandler) -> Page:
        flaky_hits.append(1)
        if len(flaky_hits) <= 2:
            return Page(b"busy", content_type="text/plain", status=503)
        return sitemap(site, [("/faq", "2026-01-01")])

    site.pages["/down.xml"] = down
    site.pages["/flaky.xml"] = flaky
    site.pages["/faq"] = page("Questions", "Answers to the questions visitors ask most.")
    down_source = Source.objects.create(
        name="Down", kind=Source.Kind.SITEMAP, url=site.url("/down.xml"), language="en"
    )
    flaky_source = Source.objects.create(
        name="Flaky", kind=Source.Kind.SITEMAP, url=site.url("/flaky.xml"), language="en"
    )
    # Far above the retries' countdowns (at most 8 s): a task held for its retry is not given
    # out a second time meanwhile.
    worker = celery.worker("retrying", visibility_timeout=600)
    down_task = celery.send_sync(down_source)
    flaky_task = celery.send_sync(flaky_source)
    _until(
        "the failing sync to give up after its last retry",
        lambda: (
            f"Task knowledge.tasks.sync_source[{down_task}] raised unexpected" in worker.output()
        ),
        worker,
    )
    _until(
        "the flaky sync to succeed",
        lambda: f"Task knowledge.tasks.sync_source[{flaky_task}] succeeded" in worker.output(),
        worker,
    )
    _until("the broker to hold no task", celery.idle, worker)

    # Four retries (max_retries) after the first attempt: five failed runs, then no more.
    down_runs = runs_of(down_source)
    assert [run.status for run in down_runs] == [SyncRun.Status.FAILED] * 5
    assert len(down_hits) == 5
    assert all(run.errors[-1]["error"] == "The server answered HTTP 503." for run in down_runs)
    flaky_runs = runs_of(flaky_source)
    assert [run.status for run in flaky_runs] == [
        SyncRun.Status.FAILED,
        SyncRun.Status.FAILED,
        SyncRun.Status.SUCCEEDED,
    ]
    assert (flaky_runs[-1].added, flaky_runs[-1].failed) == (1, 0)
    # Backoff: each retry waits what the worker announced, within 2^n seconds (jitter).
    retries: dict[str, list[int]] = {}
    for task, seconds in _RETRY_LINE.findall(worker.output()):
        retries.setdefault(task, []).append(int(seconds))
    assert sorted(retries) == sorted([down_task, flaky_task])
    assert len(retries[down_task]) == 4 and len(retries[flaky_task]) == 2
    for task, runs in ((down_task, down_runs), (flaky_task, flaky_runs)):
        for attempt, (countdown, (earlier, later)) in enumerate(
            zip(retries[task], zip(runs, runs[1:], strict=False), strict=False)
        ):
            assert countdown <= 2**attempt
            assert earlier.finished_at is not None
            waited = (later.started_at - earlier.finished_at).total_seconds()
            assert waited >= countdown - 0.5, (attempt, countdown, waited)

    # The admin lists every attempt as failed and shows the error on the run's page.
    listing = admin_client.get(
        reverse("admin:knowledge_syncrun_changelist"), {"source__id__exact": down_source.pk}
    ).content.decode()
    rows = changelist_rows(listing)
    assert {pk: (row["status"], row["failed"]) for pk, row in rows.items()} == {
        str(run.pk): ("Failed", "1") for run in down_runs
    }
    detail = admin_client.get(
        reverse("admin:knowledge_syncrun_change", args=[down_runs[-1].pk])
    ).content.decode()
    assert f"<li><code>{site.url('/down.xml')}</code>: The server answered HTTP 503.</li>" in detail


def test_beat_schedules_a_due_source_and_the_worker_syncs_it_once(
    site: LoopbackSite, celery: Celery
) -> None:
    site.pages["/a"] = page("Billing", "Invoices are emailed monthly.")
    site.pages["/b"] = page("Sharing", "Share folders with your team.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-01-01"), ("/b", "2026-01-01")])
    source = Source.objects.create(
        name="Scheduled",
        kind=Source.Kind.SITEMAP,
        url=site.url("/sitemap.xml"),
        language="en",
        sync_interval_minutes=60,
    )
    Source.objects.create(name="On demand", kind=Source.Kind.MANUAL)  # no schedule: never synced
    check_seconds = "10"  # the shortest check interval settings allow
    worker = celery.worker(
        "scheduled", visibility_timeout=600, KNOWLEDGE_SYNC_CHECK_SECONDS=check_seconds
    )
    beat = celery.beat(KNOWLEDGE_SYNC_CHECK_SECONDS=check_seconds)
    checks = re.compile(r"Task knowledge\.tasks\.sync_due_sources\[[0-9a-f-]+\] succeeded")
    # The second check finds the source synced and not due again for an hour.
    _until(
        "beat's second check of due sources",
        lambda: len(checks.findall(worker.output())) >= 2,
        worker,
        beat,
    )
    _until("the broker to hold no task", celery.idle, worker)

    runs = list(SyncRun.objects.order_by("pk"))
    assert [(run.source_id, run.trigger, run.status) for run in runs] == [
        (source.pk, SyncRun.Trigger.SCHEDULE, SyncRun.Status.SUCCEEDED)
    ]
    assert (runs[0].added, runs[0].total, runs[0].failed) == (2, 2, 0)
    source.refresh_from_db()
    assert source.last_synced_at == runs[0].finished_at
    assert Chunk.objects.filter(article__source=source).count() == 2
    assert "Sending due task knowledge-sync-due-sources" in beat.output()


class WorkerDied(BaseException):
    """Stands for SIGKILL in process: nothing in the sync catches it, so nothing is recorded."""


def test_a_run_cut_off_between_storing_a_page_and_indexing_it_is_completed_by_the_next(
    site: LoopbackSite,
) -> None:
    site.pages["/a"] = page("Billing", "Invoices are emailed monthly.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-01-01")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )
    assert source_sync(source_id=source.pk) is not None
    site.pages["/a"] = page("Billing", "Invoices are emailed every week now.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-02-01")])
    with (
        mock.patch("knowledge.services.sync.articles_index", side_effect=WorkerDied),
        pytest.raises(WorkerDied),
    ):
        source_sync(source_id=source.pk)
    article = Article.objects.get(external_id=site.url("/a"))
    assert "every week" in article.body_en  # the new text is stored, its chunks are the old ones
    assert "monthly" in Chunk.objects.get(article=article).text

    run = source_sync(source_id=source.pk)
    assert run is not None and run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert (run.updated, run.unchanged, run.chunks_embedded, run.chunks_deleted) == (1, 0, 1, 1)
    assert "every week" in Chunk.objects.get(article=article).text
    cut = runs_of(source)[1]
    assert (cut.status, cut.errors[-1]["item"]) == (SyncRun.Status.FAILED, "Help")
    assert len(runs_of(source)) == 3


def test_a_sync_task_delivered_again_after_it_finished_is_not_run_twice(
    site: LoopbackSite,
) -> None:
    from knowledge.tasks import sync_source

    site.pages["/a"] = page("Billing", "Invoices are emailed monthly.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-01-01")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )
    kwargs = {"source_id": source.pk, "trigger": SyncRun.Trigger.MANUAL}
    first = sync_source.apply(kwargs=kwargs, task_id="same-message").get()
    # Its worker died after the work, before the acknowledgement: the same message comes again.
    again = sync_source.apply(kwargs=kwargs, task_id="same-message").get()
    assert first == again and [run.pk for run in runs_of(source)] == [first]
    other = sync_source.apply(kwargs=kwargs, task_id="another-message").get()
    assert [run.pk for run in runs_of(source)] == [first, other]
