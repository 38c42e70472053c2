"""vCard 3.0 / 4.0 ↔ contact and distribution-list properties; in-place updates."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from bridge.formats import vcard_fields as F
from bridge.formats.vcard import VcardError, parse_vcard, render_vcard, update_vcard
from bridge.formats.vcard_lines import fold, parse_card
from bridge.model import classes, tags
from tests.formats.samples import CARD3, CARD4, GROUP4, GROUP_APPLE


def test_vcard3_names_and_organization() -> None:
    item = parse_vcard(CARD3)
    p = item.props
    assert item.message_class == classes.IPM_CONTACT
    assert p[tags.SURNAME] == "Doe"
    assert p[tags.GIVEN_NAME] == "John"
    assert p[tags.MIDDLE_NAME] == "Quincy"
    assert p[tags.DISPLAY_NAME_PREFIX] == "Dr."
    assert p[tags.GENERATION] == "Jr."
    assert p[tags.DISPLAY_NAME] == p[tags.SUBJECT] == "Dr. John Q. Doe Jr."
    assert p[tags.NICKNAME] == "Johnny"
    assert p[tags.COMPANY_NAME] == "Acme Inc."
    assert p[tags.DEPARTMENT_NAME] == "Research"
    assert p[tags.TITLE] == "Chief Scientist"
    assert p[tags.PROFESSION] == "Inventor"
    assert p[tags.BIRTHDAY] == dt.datetime(1970, 4, 1, tzinfo=dt.UTC)
    assert p[tags.BODY] == "First line\nSecond, with comma"
    assert p[tags.BUSINESS_HOME_PAGE] == "https://acme.example"
    assert p[tags.PERSONAL_HOME_PAGE] == "https://john.example"
    assert item.named[F.KEYWORDS] == ["Friends", "VIP"]
    assert item.named[F.VCARD_UID] == item.uid == "card-3-uid"


def test_vcard3_email_slots() -> None:
    n = parse_vcard(CARD3).named
    addrs = [n.get(slot[0]) for slot in F.EMAIL_SLOTS]
    assert addrs == ["john@acme.example", "john@home.example", "jd@third.example"]
    _, name, atype, orig = F.EMAIL_SLOTS[0]
    assert n[atype] == "SMTP"
    assert n[name] == "Dr. John Q. Doe Jr. (john@acme.example)"
    assert n[orig] == "john@acme.example"


def test_vcard3_phones_and_addresses() -> None:
    p = parse_vcard(CARD3).props
    assert p[tags.MOBILE_TELEPHONE_NUMBER] == "+1 555 0100"
    assert p[tags.BUSINESS_TELEPHONE_NUMBER] == "+1 555 0101"
    assert p[tags.HOME_TELEPHONE_NUMBER] == "+1 555 0102"
    assert p[tags.BUSINESS_FAX_NUMBER] == "+1 555 0103"
    assert p[tags.HOME_FAX_NUMBER] == "+1 555 0104"
    assert p[tags.PAGER_TELEPHONE_NUMBER] == "+1 555 0105"
    assert p[tags.STREET_ADDRESS] == "1 Main St"
    assert p[tags.LOCALITY] == "Springfield"
    assert p[tags.STATE_OR_PROVINCE] == "IL"
    assert p[tags.POSTAL_CODE] == "62701"
    assert p[tags.COUNTRY] == "USA"
    assert p[tags.HOME_ADDRESS_STREET] == "22 Home Rd"
    assert p[tags.HOME_ADDRESS_CITY] == "Shelbyville"
    assert p[tags.OTHER_ADDRESS_STREET] == "9 Other Way"
    assert p[tags.OTHER_ADDRESS_CITY] == "Capital City"
    n = parse_vcard(CARD3).named
    assert n[F.WORK_ADDRESS[0]] == "1 Main St"
    assert n[F.WORK_ADDRESS[1]] == "Springfield"


def test_vcard4_photo_birthday_without_year_and_tel_uri() -> None:
    item = parse_vcard(CARD4)
    p = item.props
    assert p[tags.DISPLAY_NAME] == "Jane Roe"
    assert p[tags.BIRTHDAY] == dt.datetime(F.NO_YEAR, 4, 15, tzinfo=dt.UTC)
    assert p[tags.MOBILE_TELEPHONE_NUMBER] == "+1-555-0200"
    (photo,) = item.attachments
    aprops, data = photo
    assert data == base64.b64decode("iVBORw0KGgo=")
    assert aprops[tags.ATTACHMENT_CONTACT_PHOTO] is True
    assert aprops[tags.ATTACH_MIME_TAG] == "image/png"
    assert aprops[tags.ATTACH_LONG_FILENAME] == "ContactPicture.png"
    assert item.uid == "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"


@pytest.mark.parametrize("raw", [GROUP4, GROUP_APPLE])
def test_groups_become_distribution_lists(raw: bytes) -> None:
    item = parse_vcard(raw)
    assert item.message_class == classes.IPM_DISTLIST
    members = item.named[F.DL_ONE_OFF]
    assert item.named[F.DL_MEMBERS] == members
    decoded = [F.parse_one_off(m) for m in members]
    assert len(decoded) == 2
    assert all(d is not None for d in decoded)
    smtp = [d for d in decoded if d and d[1] == "SMTP"]
    assert len(smtp) == 1
    assert item.named[F.DL_NAME] in ("Team", "Friends")


def test_update_without_changes_returns_raw() -> None:
    for raw in (CARD3, CARD4, GROUP4, GROUP_APPLE):
        item = parse_vcard(raw)
        out = update_vcard(raw, item.message_class, item.props, item.named, item.attachments)
        assert out == raw


def test_update_changes_only_the_changed_lines() -> None:
    item = parse_vcard(CARD3)
    props = dict(item.props)
    props[tags.TITLE] = "CEO; founder"
    props[tags.HOME_TELEPHONE_NUMBER] = "+1 555 9999"
    props[tags.CAR_TELEPHONE_NUMBER] = "+1 555 7777"
    props[tags.HOME_ADDRESS_CITY] = "Ogdenville"
    del props[tags.NICKNAME]
    out = update_vcard(CARD3, item.message_class, props, item.named, [])
    before = CARD3.decode().splitlines()
    after = out.decode().splitlines()
    assert "TITLE:CEO\\; founder" in after
    assert "TEL;TYPE=HOME;TYPE=VOICE:+1 555 9999" in after
    assert "TEL;TYPE=car,voice:+1 555 7777" in after
    assert "ADR;TYPE=HOME:;;22 Home Rd;Ogdenville;IL;62565;USA" in after
    assert not any(line.startswith("NICKNAME") for line in after)
    changed = {"TITLE", "TEL", "ADR", "NICKNAME"}
    kept_before = [ln for ln in before if ln.split(":")[0].split(";")[0] not in changed]
    kept_after = [ln for ln in after if ln.split(":")[0].split(";")[0] not in changed]
    assert kept_before == kept_after
    back = parse_vcard(out)
    assert back.props[tags.TITLE] == "CEO; founder"
    assert back.props[tags.CAR_TELEPHONE_NUMBER] == "+1 555 7777"


def test_update_vcard4_stays_4() -> None:
    item = parse_vcard(CARD4)
    named = dict(item.named)
    named[F.EMAIL_SLOTS[1][0]] = "second@example.org"
    out = update_vcard(CARD4, item.message_class, item.props, named, item.attachments)
    assert out.startswith(b"BEGIN:VCARD\r\nVERSION:4.0\r\n")
    assert b"GENDER:F\r\n" in out
    assert b"EMAIL:second@example.org\r\n" in out
    props = dict(item.props)
    props[tags.MOBILE_TELEPHONE_NUMBER] = "+1-555-0300"
    out = update_vcard(CARD4, item.message_class, props, item.named, item.attachments)
    assert b'TEL;VALUE=uri;TYPE="cell,voice":tel:+1-555-0300\r\n' in out


def test_update_group_members() -> None:
    item = parse_vcard(GROUP4)
    named = dict(item.named)
    named[F.DL_ONE_OFF] = [*named[F.DL_ONE_OFF][:1], F.one_off_entry("c", "SMTP", "c@x.org")]
    out = update_vcard(GROUP4, item.message_class, item.props, named, [])
    text = out.decode()
    assert "MEMBER:mailto:a@example.com" in text
    assert "MEMBER:mailto:c@x.org" in text
    assert "urn:uuid:03a0e51f" not in text
    assert "KIND:group" in text


def test_render_new_contact_is_vcard3() -> None:
    item = parse_vcard(CARD3)
    out = render_vcard(classes.IPM_CONTACT, item.props, item.named, [], uid="ignored")
    assert out.startswith(b"BEGIN:VCARD\r\nVERSION:3.0\r\n")
    back = parse_vcard(out)
    for tag in (
        tags.SURNAME,
        tags.GIVEN_NAME,
        tags.DISPLAY_NAME,
        tags.COMPANY_NAME,
        tags.MOBILE_TELEPHONE_NUMBER,
        tags.BUSINESS_FAX_NUMBER,
        tags.HOME_ADDRESS_STREET,
        tags.BIRTHDAY,
        tags.BODY,
    ):
        assert back.props[tag] == item.props[tag], tag
    assert back.uid == "card-3-uid"
    assert back.named[F.KEYWORDS] == ["Friends", "VIP"]


def test_render_distribution_list_and_no_year_birthday() -> None:
    named = {F.DL_ONE_OFF: [F.one_off_entry("a", "SMTP", "a@example.com")], F.DL_NAME: "Team"}
    out = render_vcard(classes.IPM_DISTLIST, {tags.DISPLAY_NAME: "Team"}, named, uid="g1")
    assert b"X-ADDRESSBOOKSERVER-KIND:group" in out
    assert b"X-ADDRESSBOOKSERVER-MEMBER:mailto:a@example.com" in out
    assert parse_vcard(out).message_class == classes.IPM_DISTLIST
    props = {tags.DISPLAY_NAME: "X", tags.BIRTHDAY: dt.datetime(F.NO_YEAR, 2, 29, tzinfo=dt.UTC)}
    out = render_vcard(classes.IPM_CONTACT, props, {}, uid="b1")
    assert b"BDAY;X-APPLE-OMIT-YEAR=1604:1604-02-29" in out
    assert parse_vcard(out).props[tags.BIRTHDAY] == props[tags.BIRTHDAY]


def test_five_megabyte_photo() -> None:
    photo = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    props = {tags.DISPLAY_NAME: "Big"}
    att = F.photo_attachment(photo, "image/jpeg")
    out = render_vcard(classes.IPM_CONTACT, props, {}, [att], uid="p1")
    assert len(out) > 5 * 1024 * 1024
    assert max(len(line) for line in out.split(b"\r\n")) <= 75
    item = parse_vcard(out)
    (aprops, data) = item.attachments[0]
    assert data == photo
    assert aprops[tags.ATTACHMENT_CONTACT_PHOTO] is True
    same = update_vcard(out, item.message_class, item.props, item.named, item.attachments)
    assert same == out
    changed = update_vcard(out, item.message_class, item.props, item.named, [])
    assert b"PHOTO" not in changed


def test_vcard21_is_read_leniently() -> None:
    raw = (
        b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Smith;Ann\r\nFN:Ann Smith\r\n"
        b"TEL;WORK;VOICE:123\r\nNOTE;ENCODING=QUOTED-PRINTABLE:caf=C3=A9\r\nEND:VCARD\r\n"
    )
    item = parse_vcard(raw)
    assert item.props[tags.BUSINESS_TELEPHONE_NUMBER] == "123"
    assert item.props[tags.BODY] == "café"


def test_folding_keeps_utf8_sequences_whole() -> None:
    text = "NOTE:" + "é" * 100
    folded = fold(text)
    for line in folded.encode().split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")
    card = parse_card("BEGIN:VCARD\r\nVERSION:3.0\r\n" + folded + "END:VCARD\r\n")
    assert card.first("NOTE") is not None
    assert card.lines[-1].value == "é" * 100


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n",
        b"BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nno colon here\r\nEND:VCARD\r\n",
        b'BEGIN:VCARD\r\nVERSION:3.0\r\nFN;X="open:x\r\nEND:VCARD\r\n',
        b"BEGIN:VCARD\x00\r\n",
    ],
)
def test_bad_vcards_are_refused_clearly(raw: bytes) -> None:
    with pytest.raises(VcardError) as info:
        parse_vcard(raw)
    assert str(info.value)
