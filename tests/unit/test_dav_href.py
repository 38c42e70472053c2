"""Canonical hrefs and the multistatus parser of the DAV adapter."""

from __future__ import annotations

import pytest

from bridge.upstream import dav_href
from bridge.upstream import dav_xml as X
from bridge.upstream.dav_answers import kind_of, normalize_etag


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("/cal/a%20b.ics", "/cal/a%20b.ics"),
        ("/cal/a b.ics", "/cal/a%20b.ics"),
        ("http://host:8080/cal/%7Ebob/x.ics", "/cal/~bob/x.ics"),
        ("/cal/caf%c3%a9.ics", "/cal/caf%C3%A9.ics"),
        ("/cal/café.ics", "/cal/caf%C3%A9.ics"),
        ("/cal/user%40example.org/", "/cal/user@example.org/"),
        ("/cal/a%2Fb.ics", "/cal/a%2Fb.ics"),  # an encoded slash stays inside its segment
        ("x.ics", "/cal/work/x.ics"),
    ],
)
def test_normalize(given: str, canonical: str) -> None:
    assert dav_href.normalize(given, "http://host/cal/work/") == canonical


def test_member_and_last_segment() -> None:
    href = dav_href.member("/cal/work", "Grüße 1/2.ics")
    assert href == "/cal/work/Gr%C3%BC%C3%9Fe%201%2F2.ics"
    assert dav_href.last_segment(href) == "Grüße 1/2.ics"
    assert dav_href.last_segment("/cal/Work%20Stuff/") == "Work Stuff"


def test_kinds_and_etags() -> None:
    assert kind_of(frozenset({"VEVENT", "VTODO"})) == "calendar"
    assert kind_of(frozenset({"VTODO"})) == "tasks"
    assert kind_of(frozenset({"VJOURNAL"})) == "notes"
    assert kind_of(frozenset()) == "calendar"
    assert kind_of(frozenset({"VFREEBUSY"})) is None
    assert normalize_etag("abc") == '"abc"'
    assert normalize_etag(' "abc" ') == '"abc"'
    assert normalize_etag('W/"x"') == 'W/"x"'
    assert normalize_etag("") is None


def test_multistatus_statuses_and_props() -> None:
    body = (
        b'<?xml version="1.0"?><multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        b'<response><href>/c/a.ics</href><propstat><prop><getetag>"1"</getetag></prop>'
        b"<status>HTTP/1.1 200 OK</status></propstat><propstat><prop><C:calendar-data/>"
        b"</prop><status>HTTP/1.1 404 Not Found</status></propstat></response>"
        b"<response><href>/c/b.ics</href><status>HTTP/1.1 404 Not Found</status></response>"
        b"<response><href> </href></response>"
        b"<sync-token>tok</sync-token></multistatus>"
    )
    ms = X.parse_multistatus(body, "http://h/c/")
    assert ms.sync_token == "tok"
    a, b = ms.responses
    assert (a.href, a.status, a.text(X.GETETAG)) == ("/c/a.ics", None, '"1"')
    assert a.missing == {X.CALENDAR_DATA: 404}
    assert (b.href, b.status) == ("/c/b.ics", 404)


def test_error_conditions() -> None:
    body = b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    assert X.error_conditions(body) == {X.VALID_SYNC_TOKEN}
    assert X.error_conditions(b"<html>nope</html>") == set()
    assert X.error_conditions(b"Forbidden") == set()


def test_request_bodies_escape_names() -> None:
    body = X.mkcalendar("A <b> & \x01c", ["VTODO"]).decode()
    assert "A &lt;b&gt; &amp; c" in body and 'name="VTODO"' in body
    X.parse_xml(body.encode())  # well-formed
    X.parse_xml(X.proppatch_displayname("\x00x").decode().encode())
