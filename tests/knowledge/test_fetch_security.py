"""Syncs never reach private addresses (SSRF), stay on their allowed hosts, within their limits.

The protection is on (KNOWLEDGE_FETCH_ALLOW_PRIVATE false) unless a test says otherwise. The
pages come from a loopback server; where a test needs a "public" host, the resolver says
help.example is at a public address and the socket layer (below the check) carries connections
to that address to the loopback server instead: the internet, faked at its boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpcore
import pytest

from knowledge import fetch as fetch_module
from knowledge.extract import sitemap_entries
from knowledge.fetch import FetchError, address_refusal, client, fetch
from knowledge.models import Article, Chunk, Source, SyncRun, validate_allowed_domains
from knowledge.search import chunk_search
from knowledge.services import articles_publish, source_sync
from tests.knowledge.conftest import LoopbackSite, Page

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "93.184.216.34"  # what the fake resolver answers for the public test hosts
NEVER = "never fetched"


@dataclass
class Internet:
    """The resolver's answers for test names, and every address a connection was opened to."""

    site: LoopbackSite
    names: dict[str, list[str]] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    connected: list[tuple[str, int]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.site.server.server_address[1])

    def url(self, path: str, host: str = "help.example") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def internet(hostile_site: LoopbackSite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Internet]:
    world = Internet(hostile_site, {"help.example": [PUBLIC], "other.example": [PUBLIC]})
    real_resolve = fetch_module._resolve
    real_connect = httpcore.SyncBackend.connect_tcp

    def resolve(host: str, port: int) -> list[str]:
        world.resolved.append(host)
        return world.names[host] if host in world.names else real_resolve(host, port)

    def connect_tcp(self: httpcore.SyncBackend, host: str, port: int, *args: Any) -> Any:
        world.connected.append((host, port))
        return real_connect(self, "127.0.0.1" if host == PUBLIC else host, port, *args)

    monkeypatch.setattr(fetch_module, "_resolve", resolve)
    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    yield world


def html(title: str, text: str) -> Page:
    return Page(
        f"<html><head><title>{title}</title></head><body><p>{text}</p></body></html>".encode()
    )


def sitemap(locs: list[str]) -> Page:
    urls = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return Page(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}'
        "</urlset>".encode(),
        content_type="application/xml",
    )


def sitemap_index(locs: list[str]) -> Page:
    maps = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return Page(
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{maps}</sitemapindex>".encode(),
        content_type="application/xml",
    )


def redirect(location: str) -> Page:
    return Page(b"", status=302, headers={"Location": location})


def errors_of(run: SyncRun | None) -> dict[str, str]:
    assert run is not None
    return {error["item"]: error["error"] for error in run.errors}


# --- Addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # CGNAT
        "100.100.100.200",  # Alibaba Cloud's metadata service, inside CGNAT
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",  # AWS's IPv6 metadata service
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_fetched(address: str) -> None:
    assert address_refusal(address) is None


def test_allowing_private_addresses_never_allows_the_metadata_service() -> None:
    assert address_refusal("127.0.0.1", allow_private=True) is None
    assert address_refusal("10.0.0.1", allow_private=True) is None
    assert address_refusal("169.254.169.254", allow_private=True) == "link-local"
    assert address_refusal("::ffff:169.254.169.254", allow_private=True) == "link-local"
    assert address_refusal("fe80::1", allow_private=True) == "link-local"


# --- Direct URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "LOCALHOST."]
)
def test_a_url_source_on_a_loopback_address_is_refused_and_nothing_is_stored(
    hostile_site: LoopbackSite, host: str
) -> None:
    hostile_site.pages["/secret"] = html("Secret", "aws_secret_access_key=abc")
    url = f"http://{host}:{hostile_site.server.server_address[1]}/secret"
    source = Source.objects.create(name="Local", kind=Source.Kind.URL, url=url)
    run = source_sync(source_id=source.pk)
    assert run is not None and run.status == SyncRun.Status.PARTIAL and run.failed == 1
    assert NEVER in errors_of(run)[url]
    assert hostile_site.requests == []  # not even connected to
    assert not Article.objects.exists() and not Chunk.objects.exists()


def test_a_sitemap_on_a_private_address_fails_the_run_and_removes_what_it_stored_before(
    hostile_site: LoopbackSite,
) -> None:
    url = f"http://127.0.0.1:{hostile_site.server.server_address[1]}/sitemap.xml"
    source = Source.objects.create(name="Local", kind=Source.Kind.SITEMAP, url=url)
    Article.objects.create(
        title_en="Stolen", source=source, external_id="stolen", status="published"
    )
    run = source_sync(source_id=source.pk)
    assert run is not None and run.status == SyncRun.Status.FAILED
    assert NEVER in errors_of(run)[url]
    assert hostile_site.requests == [] and not Article.objects.exists()


def test_metadata_host_names_are_refused_whatever_they_resolve_to(internet: Internet) -> None:
    internet.names["metadata.google.internal"] = [PUBLIC]
    with client() as http, pytest.raises(FetchError, match="metadata"):
        fetch(http, "http://metadata.google.internal/computeMetadata/v1/")
    assert internet.connected == []


# --- Redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://[::1]:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.5/",
        "http://100.64.0.1/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_a_redirect_to_a_private_address_is_refused_and_nothing_is_stored(
    internet: Internet, target: str
) -> None:
    target = target.format(port=internet.port)
    internet.site.pages["/start"] = redirect(target)
    internet.site.pages["/secret"] = html("Secret", "aws_secret_access_key=abc")
    source = Source.objects.create(
        name="Help",
        kind=Source.Kind.URL,
        url=internet.url("/start"),
        # Every host allowed: the address is what is refused, not the domain.
        allowed_domains="127.0.0.1 localhost ::1 ::ffff:127.0.0.1 169.254.169.254 10.0.0.5 "
        "100.64.0.1 fd00:ec2::254 metadata.google.internal",
    )
    run = source_sync(source_id=source.pk)
    error = errors_of(run)[internet.url("/start")]
    assert NEVER in error, error
    assert [path for path, _headers in internet.site.requests] == ["/start"]
    assert internet.connected == [(PUBLIC, internet.port)]  # the first hop only
    assert not Article.objects.exists() and not Chunk.objects.exists()


def test_a_redirect_to_a_host_outside_the_allowed_domains_is_refused(internet: Internet) -> None:
    internet.site.pages["/start"] = redirect(internet.url("/page", host="other.example"))
    internet.site.pages["/page"] = html("Elsewhere", "Another site's page.")
    source = Source.objects.create(name="Help", kind=Source.Kind.URL, url=internet.url("/start"))
    run = source_sync(source_id=source.pk)
    assert "allowed domains" in errors_of(run)[internet.url("/start")]
    assert not Article.objects.exists()

    Source.objects.filter(pk=source.pk).update(allowed_domains="*.example")
    run = source_sync(source_id=source.pk)
    assert run is not None and run.added == 1, run.errors


def test_the_connection_goes_to_the_address_that_was_checked(internet: Internet) -> None:
    """DNS rebinding: a resolver that answers a public address, then loopback, is asked once
    per connection, and the connection is opened to that answer, not to the name."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    internet.names.clear()
    real_names = fetch_module._resolve

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers) if host == "help.example" else real_names(host, port)

    fetch_module._resolve = rebinding  # type: ignore[assignment]  # monkeypatch restores it
    internet.site.pages["/page"] = html("Hello", "Public page.")
    with client() as http:
        fetched = fetch(http, internet.url("/page"))
    assert fetched.text.startswith("<html>")
    assert internet.connected == [(PUBLIC, internet.port)]
    assert internet.site.requests[0][1]["Host"] == f"help.example:{internet.port}"
    assert next(answers) == ["127.0.0.1"]  # asked once: the second answer was never used


def test_a_host_with_any_private_address_is_refused(internet: Internet) -> None:
    internet.names["mixed.example"] = [PUBLIC, "127.0.0.1"]
    with client() as http, pytest.raises(FetchError, match=NEVER):
        fetch(http, internet.url("/page", host="mixed.example"))
    assert internet.connected == []


# --- Sitemaps -------------------------------------------------------------------------------


def test_a_sitemap_listing_the_metadata_service_syncs_nothing_from_it(
    internet: Internet, settings: Any
) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    internet.site.pages["/ok"] = html("Billing", "Invoices are emailed monthly.")
    internet.site.pages["/sitemap.xml"] = sitemap([metadata, internet.url("/ok")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=internet.url("/sitemap.xml"), language="en"
    )
    # Stored by a sync before this protection existed: it must not stay quotable.
    Article.objects.create(title_en="Keys", source=source, external_id=metadata, status="published")

    run = source_sync(source_id=source.pk)  # blank allowed domains: the sitemap's host only
    assert run is not None and (run.added, run.failed, run.deleted) == (1, 1, 1)
    assert "allowed domains" in errors_of(run)[metadata]
    assert list(Article.objects.values_list("external_id", flat=True)) == [internet.url("/ok")]

    # Listed explicitly, or with private addresses allowed, the address is still refused.
    Source.objects.filter(pk=source.pk).update(allowed_domains="169.254.169.254")
    settings.KNOWLEDGE_FETCH_ALLOW_PRIVATE = True
    run = source_sync(source_id=source.pk)
    assert NEVER in errors_of(run)[metadata]
    assert all(host != "169.254.169.254" for host, _port in internet.connected)
    assert not Article.objects.filter(external_id=metadata).exists()


def test_nested_sitemaps_on_other_hosts_are_not_followed(internet: Internet) -> None:
    internet.site.pages["/index.xml"] = sitemap_index(
        [internet.url("/child.xml", host="other.example")]
    )
    internet.site.pages["/child.xml"] = sitemap([internet.url("/a", host="other.example")])
    internet.site.pages["/a"] = html("A", "Page a.")
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=internet.url("/index.xml")
    )
    run = source_sync(source_id=source.pk)
    assert "allowed domains" in errors_of(run)[internet.url("/child.xml", host="other.example")]
    assert [path for path, _headers in internet.site.requests] == ["/index.xml"]
    assert not Article.objects.exists()


def test_a_nested_sitemap_bomb_is_refused(internet: Internet) -> None:
    children = [internet.url(f"/child-{n}.xml") for n in range(500)]
    internet.site.pages["/sitemap.xml"] = sitemap_index(children)
    for n in range(500):
        internet.site.pages[f"/child-{n}.xml"] = sitemap([internet.url(f"/page-{n}")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=internet.url("/sitemap.xml")
    )
    run = source_sync(source_id=source.pk)
    assert run is not None and run.status == SyncRun.Status.FAILED
    error = errors_of(run)[internet.url("/sitemap.xml")]
    assert "500" in error and "50" in error and "KNOWLEDGE_SITEMAP_MAX_NESTED" in error
    assert [path for path, _headers in internet.site.requests] == ["/sitemap.xml"]
    assert not Article.objects.exists()


def test_a_sitemap_index_inside_a_sitemap_index_is_reported_and_deletes_nothing(
    internet: Internet,
) -> None:
    internet.site.pages["/sitemap.xml"] = sitemap_index([internet.url("/deeper.xml")])
    internet.site.pages["/deeper.xml"] = sitemap_index([internet.url("/deepest.xml")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=internet.url("/sitemap.xml")
    )
    Article.objects.create(title_en="Kept", source=source, external_id="kept")
    run = source_sync(source_id=source.pk)
    assert "not followed" in errors_of(run)[internet.url("/deeper.xml")]
    assert "/deepest.xml" not in [path for path, _headers in internet.site.requests]
    assert Article.objects.filter(external_id="kept").exists()  # the list was incomplete


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!--' + "padding " * 1000 + "-->\n"  # past the first 4 KB
    "<!DOCTYPE lolz [\n"
    '<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">\n'
        for n in range(1, 10)
    )
    + "]>\n"
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol9;</loc></url>'
    "</urlset>"
)


def test_an_entity_bomb_sitemap_is_refused(internet: Internet) -> None:
    internet.site.pages["/sitemap.xml"] = Page(
        BILLION_LAUGHS.encode(), content_type="application/xml"
    )
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=internet.url("/sitemap.xml")
    )
    started = time.monotonic()
    run = source_sync(source_id=source.pk)
    assert time.monotonic() - started < 30
    assert run is not None and run.status == SyncRun.Status.FAILED
    assert "DTD" in errors_of(run)[internet.url("/sitemap.xml")]
    assert not Article.objects.exists()


@pytest.mark.parametrize(
    "xml",
    [
        BILLION_LAUGHS,
        '<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "http://169.254.169.254/x.dtd"><urlset/>',
        '<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<urlset><url><loc>&e;</loc></url></urlset>",
    ],
)
def test_sitemaps_with_a_dtd_anywhere_are_refused(xml: str) -> None:
    with pytest.raises(FetchError, match="DTD"):
        sitemap_entries(xml)


# --- Deadline -------------------------------------------------------------------------------


def slow(page: Page, seconds: float) -> Callable[[BaseHTTPRequestHandler], Page]:
    def serve(_handler: BaseHTTPRequestHandler) -> Page:
        time.sleep(seconds)
        return page

    return serve


def test_a_page_must_be_fetched_within_the_total_deadline(
    site: LoopbackSite, settings: Any
) -> None:
    """Each hop answers well within the timeout; together they take longer than the deadline."""
    settings.KNOWLEDGE_FETCH_TIMEOUT_SECONDS = 15
    settings.KNOWLEDGE_FETCH_DEADLINE_SECONDS = 1.0
    site.pages["/r1"] = slow(redirect("/r2"), 0.6)
    site.pages["/r2"] = slow(redirect("/page"), 0.6)
    site.pages["/page"] = slow(html("Late", "Too late."), 0.6)
    source = Source.objects.create(name="Slow", kind=Source.Kind.URL, url=site.url("/r1"))
    started = time.monotonic()
    run = source_sync(source_id=source.pk)
    assert time.monotonic() - started < 5
    assert "1.0 seconds in all" in errors_of(run)[site.url("/r1")]
    assert not Article.objects.exists()


# --- Review ---------------------------------------------------------------------------------


def test_new_pages_wait_as_drafts_unless_the_source_publishes_them(site: LoopbackSite) -> None:
    site.pages["/refunds"] = html("Refunds", "Refunds are paid back within fourteen days.")
    source = Source.objects.create(
        name="Help", kind=Source.Kind.URL, url=site.url("/refunds"), language="en"
    )
    run = source_sync(source_id=source.pk)
    assert run is not None and run.added == 1
    article = Article.objects.get(source=source)
    assert article.status == Article.Status.DRAFT
    assert chunk_search(query="refunds fourteen days", language="en", limit=3) == []

    assert articles_publish(article_ids=[article.pk]) == 1
    assert chunk_search(query="refunds fourteen days", language="en", limit=3)[0].title == "Refunds"

    site.pages["/faq"] = html("FAQ", "Answers.")
    published = Source.objects.create(
        name="Trusted", kind=Source.Kind.URL, url=site.url("/faq"), publish_new_pages=True
    )
    source_sync(source_id=published.pk)
    assert Article.objects.get(source=published).status == Article.Status.PUBLISHED


def test_allowed_domains_are_host_names() -> None:
    validate_allowed_domains("docs.example.com\n*.example.org, 203.0.113.7")
    with pytest.raises(Exception, match="Not a host name"):
        validate_allowed_domains("https://example.com/path")


def test_https_is_checked_against_the_name_while_connected_to_the_checked_address(
    internet: Internet, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to help.example: SNI and the certificate check are for the name, the socket goes to
    the address the name was checked at; a certificate for another name is refused."""
    import ssl
    import subprocess
    import threading
    from http.server import ThreadingHTTPServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=help.example", "-addext", "subjectAltName=DNS:help.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"<html><head><title>Secure</title></head><body>TLS page.</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(fetch_module, "_ssl_context", lambda: trusting)
    try:
        with client() as http:
            fetched = fetch(http, f"https://help.example:{port}/")
            assert "TLS page." in fetched.text
            assert server_names == ["help.example"]
            assert internet.connected == [(PUBLIC, port)]
            internet.names["wrong.example"] = [PUBLIC]
            with pytest.raises(FetchError, match="could not be fetched"):
                fetch(http, f"https://wrong.example:{port}/")  # certificate is for help.example
    finally:
        server.shutdown()
        server.server_close()
