"""The tagged-property table, flag values and message classes."""

from __future__ import annotations

import re

import pytest

from bridge.model import classes, flags, tags
from bridge.model.proptypes import PropType, is_known_type, prop_id, prop_type


def _constants() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(tags).items()
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and isinstance(value, int)
    }


def test_every_constant_is_in_the_table() -> None:
    constants = _constants()
    assert len(constants) == len(tags.TAGS)
    for name, value in constants.items():
        info = tags.TAGS[value]
        assert info.pr_name == "PR_" + name
        assert info.tag == value


def test_names_are_unique() -> None:
    pidtags = [i.pidtag for i in tags.TAGS.values()]
    pr_names = [i.pr_name for i in tags.TAGS.values()]
    assert len(set(pidtags)) == len(pidtags)
    assert len(set(pr_names)) == len(pr_names)
    lowered = {n.lower() for n in pidtags + pr_names}
    assert len(lowered) == len(pidtags) + len(pr_names)


def test_names_resolve_back_to_the_same_tag() -> None:
    for tag, info in tags.TAGS.items():
        assert info.pidtag.startswith("PidTag")
        assert info.pr_name.startswith("PR_")
        assert tags.by_name(info.pidtag) is info
        assert tags.by_name(info.pr_name) is info
        assert tags.by_tag(tag) is info


def test_types_are_known_and_strings_are_unicode() -> None:
    for info in tags.TAGS.values():
        assert is_known_type(info.type), info
        assert info.type & 0xFFF != PropType.STRING8, info
        assert info.id == prop_id(info.tag)
        assert info.type == prop_type(info.tag)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUBJECT", 0x0037001F),
        ("MESSAGE_CLASS", 0x001A001F),
        ("ENTRYID", 0x0FFF0102),
        ("SENDER_EMAIL_ADDRESS", 0x0C1F001F),
        ("DISPLAY_TO", 0x0E04001F),
        ("MESSAGE_DELIVERY_TIME", 0x0E060040),
        ("ATTACH_DATA_BIN", 0x37010102),
        ("ATTACH_DATA_OBJ", 0x3701000D),
        ("ATTACH_LONG_FILENAME", 0x3707001F),
        ("RECIPIENT_TYPE", 0x0C150003),
        ("BODY", 0x1000001F),
        ("HTML", 0x10130102),
        ("CONTAINER_CLASS", 0x3613001F),
        ("ADDITIONAL_REN_ENTRYIDS", 0x36D81102),
        ("FREEBUSY_ENTRYIDS", 0x36E41102),
        ("IPM_SUBTREE_ENTRYID", 0x35E00102),
        ("IPM_OUTBOX_ENTRYID", 0x35E20102),
        ("IPM_WASTEBASKET_ENTRYID", 0x35E30102),
        ("IPM_SENTMAIL_ENTRYID", 0x35E40102),
        ("IPM_APPOINTMENT_ENTRYID", 0x36D00102),
        ("IPM_CONTACT_ENTRYID", 0x36D10102),
        ("IPM_JOURNAL_ENTRYID", 0x36D20102),
        ("IPM_NOTE_ENTRYID", 0x36D30102),
        ("IPM_TASK_ENTRYID", 0x36D40102),
        ("REM_ONLINE_ENTRYID", 0x36D50102),
        ("IPM_DRAFTS_ENTRYID", 0x36D70102),
        ("STORE_ENTRYID", 0x0FFB0102),
        ("STORE_RECORD_KEY", 0x0FFA0102),
        ("MAPPING_SIGNATURE", 0x0FF80102),
        ("MDB_PROVIDER", 0x34140102),
        ("STORE_SUPPORT_MASK", 0x340D0003),
        ("VALID_FOLDER_MASK", 0x35DF0003),
        ("FINDER_ENTRYID", 0x35E70102),
        ("MESSAGE_SIZE", 0x0E080003),
        ("MESSAGE_SIZE_EXTENDED", 0x0E080014),
        ("LOCAL_COMMIT_TIME", 0x67090040),
        ("CHANGE_NUMBER", 0x67A40014),
        ("ATTR_HIDDEN", 0x10F4000B),
        ("PARENT_DISPLAY", 0x0E05001F),
        ("INTERNET_CPID", 0x3FDE0003),
        ("MESSAGE_LOCALE_ID", 0x3FF10003),
        ("READ", 0x0E69000B),
        ("REPLY_RECIPIENT_NAMES", 0x0050001F),
        ("ORIGINAL_SUBJECT", 0x0049001F),
        ("SENDER_ENTRYID", 0x0C190102),
        ("SENT_REPRESENTING_ENTRYID", 0x00410102),
        ("SEARCH_KEY", 0x300B0102),
        ("RULE_CONDITION", 0x667900FD),
        ("RULE_ACTIONS", 0x668000FE),
        ("MEMBER_ID", 0x66710014),
        ("DELEGATE_FLAGS", 0x686B1003),
        ("SCHDINFO_DELEGATE_NAMES_W", 0x684A101F),
        ("BIRTHDAY", 0x3A420040),
    ],
)
def test_known_values(name: str, value: int) -> None:
    assert getattr(tags, name) == value


def test_by_name_string_variants() -> None:
    wide = tags.by_name("PR_SUBJECT_W")
    assert wide is not None and wide.tag == tags.SUBJECT
    narrow = tags.by_name("PR_SUBJECT_A")
    assert narrow is not None
    assert narrow.tag == 0x0037001E
    assert narrow.pidtag == "PidTagSubject"
    assert narrow.pr_name == "PR_SUBJECT_A"
    assert tags.by_tag(0x0037001E) is None
    mv = tags.by_name("PR_SCHDINFO_DELEGATE_NAMES_A")
    assert mv is not None and mv.tag == 0x6844101E
    exact = tags.by_name("PR_SCHDINFO_DELEGATE_NAMES_W")
    assert exact is not None and exact.tag == 0x684A101F


@pytest.mark.parametrize(
    "name", ["PR_ENTRYID_W", "PR_ENTRYID_A", "PR_NOPE", "PidTagNope", "", "PR_", "_A", "SUBJECT"]
)
def test_by_name_misses(name: str) -> None:
    assert tags.by_name(name) is None


def test_by_name_is_case_insensitive() -> None:
    assert tags.by_name("pidtagsubject") is tags.TAGS[tags.SUBJECT]
    assert tags.by_name("pr_subject_w") is tags.TAGS[tags.SUBJECT]


def test_flags() -> None:
    assert flags.MSGFLAG_READ == 1
    assert flags.MSGFLAG_ASSOCIATED == 0x40
    assert flags.MSGSTATUS_DRAFT == 0x100
    assert (flags.MAPI_ORIG, flags.MAPI_TO, flags.MAPI_CC, flags.MAPI_BCC) == (0, 1, 2, 3)
    assert (flags.ATTACH_BY_VALUE, flags.ATTACH_EMBEDDED_MSG) == (1, 5)
    assert (flags.MAPI_STORE, flags.MAPI_FOLDER, flags.MAPI_MESSAGE) == (1, 3, 5)
    assert (flags.MAPI_MAILUSER, flags.MAPI_ATTACH) == (6, 7)
    assert (flags.FOLDER_ROOT, flags.FOLDER_GENERIC, flags.FOLDER_SEARCH) == (0, 1, 2)


@pytest.mark.parametrize(
    ("message_class", "container"),
    [
        ("IPM.Note", "IPF.Note"),
        ("IPM.Note.SMIME", "IPF.Note"),
        ("IPM", "IPF.Note"),
        ("REPORT.IPM.Note.NDR", "IPF.Note"),
        ("IPM.Appointment", "IPF.Appointment"),
        ("ipm.appointment.custom", "IPF.Appointment"),
        ("IPM.AppointmentX", "IPF.Note"),
        ("IPM.Schedule.Meeting.Request", "IPF.Appointment"),
        (classes.IPM_APPOINTMENT_EXCEPTION, "IPF.Appointment"),
        ("IPM.Contact", "IPF.Contact"),
        ("IPM.DistList", "IPF.Contact"),
        ("IPM.Task", "IPF.Task"),
        ("IPM.TaskRequest.Accept", "IPF.Task"),
        ("IPM.StickyNote", "IPF.StickyNote"),
        ("IPM.Activity", "IPF.Journal"),
        ("IPM.Post", "IPF.Note"),
    ],
)
def test_container_class_for(message_class: str, container: str) -> None:
    assert classes.container_class_for(message_class) == container


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("IPM.Note", True),
        (classes.IPC_DEFERRED_ACTION, True),
        ("", False),
        (" IPM.Note", False),
        ("IPM.Note ", False),
        ("IPM.Nöte", False),
        ("IPM\tNote", False),
        ("I" * 255, True),
        ("I" * 256, False),
    ],
)
def test_is_valid_message_class(text: str, ok: bool) -> None:
    assert classes.is_valid_message_class(text) is ok
