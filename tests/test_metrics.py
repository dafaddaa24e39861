"""/metrics: who may read it, what a search and a sync add to it, and the sum over processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings

from knowledge.models import Source, SyncRun
from knowledge.search import chunk_search
from knowledge.services import articles_import, import_run_record, source_sync

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "metrics-token-for-tests-0123456789"
OUTSIDE = "203.0.113.7"  # TEST-NET-3: never one of the allowed networks here

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(response: HttpResponse) -> Samples:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: Client) -> Samples:
    return parsed(client.get("/metrics"))  # the test client comes from 127.0.0.1


def assert_refused(response: HttpResponse) -> None:
    assert (response.status_code, response.content) == (404, b"")


def test_metrics_are_refused_outside_the_allowed_networks_without_a_token(client: Client) -> None:
    assert_refused(client.get("/metrics", REMOTE_ADDR=OUTSIDE))
    assert_refused(client.get("/metrics", REMOTE_ADDR="10.0.0.1"))


def test_metrics_are_served_to_loopback_by_default(client: Client) -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        samples = parsed(client.get("/metrics", REMOTE_ADDR=address))
        assert ("autoglm_knowledge_search_seconds_count", ()) in samples
        assert samples[("autoglm_knowledge_sync_runs_total", (("status", "failed"),))] >= 0


def test_no_language_prefix_serves_metrics(client: Client) -> None:
    assert client.get("/fr/metrics").status_code == 404
    assert client.get("/metrics", HTTP_ACCEPT_LANGUAGE="fr").status_code == 200


def test_the_token_admits_from_anywhere_and_a_wrong_token_does_not(
    client: Client, settings: Settings
) -> None:
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ("autoglm_knowledge_search_seconds_count", ()) in parsed(response)
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        assert_refused(client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=header))
    assert_refused(client.get("/metrics", REMOTE_ADDR=OUTSIDE))


def test_without_a_token_setting_no_bearer_admits(client: Client, settings: Settings) -> None:
    settings.METRICS_TOKEN = ""
    assert_refused(client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer "))


def test_a_request_forwarded_by_a_proxy_needs_the_token(client: Client, settings: Settings) -> None:
    # A proxy on loopback would otherwise hand the allowlist to the whole internet.
    settings.METRICS_TOKEN = TOKEN
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        assert_refused(client.get("/metrics", **{header: OUTSIDE}))
    forwarded = client.get(
        "/metrics", HTTP_X_FORWARDED_FOR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert forwarded.status_code == 200


def test_the_allowed_networks_are_configurable(client: Client, settings: Settings) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.2.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    assert_refused(client.get("/metrics", REMOTE_ADDR="127.0.0.1"))
    settings.METRICS_ALLOWED_NETWORKS = []
    assert_refused(client.get("/metrics", REMOTE_ADDR="10.2.3.4"))


def test_only_get_and_head_are_answered(client: Client) -> None:
    assert client.post("/metrics").status_code == 405
    assert client.head("/metrics").status_code == 200


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after[key] - before.get(key, 0.0)


@pytest.fixture
def own_metrics_only(settings: Settings, tmp_path: Path) -> None:
    """/metrics reads this process's files only: another test run may share the directory."""
    shared = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert shared == settings.PROMETHEUS_MULTIPROC_DIR
    for kind in ("counter", "histogram"):  # created when autoglm_site.metrics was imported
        name = f"{kind}_{os.getpid()}.db"
        (tmp_path / name).symlink_to(shared / name)
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("own_metrics_only")
def test_a_search_and_sync_runs_show_in_the_metrics(client: Client) -> None:
    articles_import(
        lines=[
            json.dumps(
                {
                    "id": "pw",
                    "lang": "en",
                    "title": "Resetting your password",
                    "body": "Click Forgot password on the sign-in page.",
                }
            )
        ]
    )
    before = scrape(client)

    hits = chunk_search(query="how do I reset my password", language="en", limit=3)
    assert hits[0].article_id == "pw"
    empty = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL, language="en")
    succeeded = source_sync(source_id=empty.pk)
    assert succeeded is not None and succeeded.status == SyncRun.Status.SUCCEEDED
    unreachable = Source.objects.create(
        name="Gone",
        kind=Source.Kind.URL,
        url=f"http://127.0.0.1:{_closed_port()}/help",
        language="en",
    )
    partial = source_sync(source_id=unreachable.pk)
    assert partial is not None and (partial.status, partial.failed) == (SyncRun.Status.PARTIAL, 1)
    # Saving a finished run again (an admin edit, a retry reloading it) counts nothing more.
    partial.save()
    SyncRun.objects.get(pk=succeeded.pk).save()
    # A run recorded finished at once (kb_import's record) counts once.
    import_run_record(result=articles_import(lines=[]))

    after = scrape(client)
    search = "autoglm_knowledge_search_seconds"
    assert _delta(before, after, f"{search}_count") == 1
    assert _delta(before, after, f"{search}_bucket", le="+Inf") == 1
    assert 0 < _delta(before, after, f"{search}_sum") < 30
    runs = "autoglm_knowledge_sync_runs_total"
    assert _delta(before, after, runs, status="succeeded") == 2
    assert _delta(before, after, runs, status="partial") == 1
    assert _delta(before, after, runs, status="failed") == 0
    assert _delta(before, after, "autoglm_knowledge_sync_item_failures_total") == 1


def _python(code: str, directory: Path) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "autoglm_site.settings",
    }
    return [sys.executable, "-c", code], env


def _run(code: str, directory: Path) -> None:
    args, env = _python(code, directory)
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


INCREMENT = (
    "from autoglm_site import metrics; "
    "metrics.ERRORS.labels(code='multiprocess_test').inc({errors}); "
    "metrics.SOCKETS_ACTIVE.inc({sockets})"
)


def test_processes_add_up_and_a_dead_process_gauges_drop_out(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path
    args, env = _python(
        INCREMENT.format(errors=3, sockets=2) + "; print('ready', flush=True); "
        "import sys; sys.stdin.read()",
        tmp_path,
    )
    alive = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert alive.stdout is not None and alive.stdout.readline() == "ready\n"
        _run(INCREMENT.format(errors=4, sockets=5), tmp_path)  # starts, counts, exits

        samples = scrape(client)
        assert samples[("autoglm_errors_total", (("code", "multiprocess_test"),))] == 7
        assert samples[("autoglm_sockets_active", ())] == 2  # the exited process's 5 are gone
    finally:
        alive.communicate(timeout=30)
    assert alive.returncode == 0

    samples = scrape(client)
    assert samples[("autoglm_errors_total", (("code", "multiprocess_test"),))] == 7
    assert ("autoglm_sockets_active", ()) not in samples


def test_a_start_with_no_process_alive_forgets_the_old_counts(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path
    _run(INCREMENT.format(errors=5, sockets=1), tmp_path)
    _run(INCREMENT.format(errors=1, sockets=1), tmp_path)  # the service started again
    samples = scrape(client)
    assert samples[("autoglm_errors_total", (("code", "multiprocess_test"),))] == 1


def test_a_bad_allowed_network_stops_start_up(tmp_path: Path) -> None:
    args, env = _python("import django; django.setup()", tmp_path)
    env["METRICS_ALLOWED_NETWORKS"] = "127.0.0.1/8,intranet"
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS entry 'intranet' is not a network" in result.stderr
