"""Tagged (fixed-ID) MAPI properties: constants named after PR_ names, and the lookup table.

Each constant is the full 32-bit tag; ``SUBJECT`` is ``PR_SUBJECT`` = ``PidTagSubject``.
String properties use PT_UNICODE; ``PR_X_A`` names resolve to the PT_STRING8 variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.model.proptypes import MV_FLAG as _MV
from bridge.model.proptypes import PropType, make_tag, prop_id, prop_type


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One tagged property: its tag and canonical names."""

    tag: int
    pidtag: str
    pr_name: str

    @property
    def id(self) -> int:
        return prop_id(self.tag)

    @property
    def type(self) -> int:
        return prop_type(self.tag)


_U = PropType.UNICODE
_B = PropType.BINARY
_L = PropType.LONG
_T = PropType.SYSTIME
_F = PropType.BOOLEAN
_O = PropType.OBJECT
_I8 = PropType.I8
_MVB = PropType.BINARY | _MV
_MVU = PropType.UNICODE | _MV
_MVL = PropType.LONG | _MV

_PIDTAGS: dict[int, str] = {}


def _t(pid: int, ptype: int, pidtag: str) -> int:
    """Register a tag with its PidTag name (without the "PidTag" prefix); returns the tag."""
    tag = make_tag(pid, ptype)
    if tag in _PIDTAGS:
        raise ValueError(f"duplicate tag 0x{tag:08X}")
    _PIDTAGS[tag] = "PidTag" + pidtag
    return tag


# --- identity (every object) ---
ENTRYID = _t(0x0FFF, _B, "EntryId")
PARENT_ENTRYID = _t(0x0E09, _B, "ParentEntryId")
RECORD_KEY = _t(0x0FF9, _B, "RecordKey")
SEARCH_KEY = _t(0x300B, _B, "SearchKey")
INSTANCE_KEY = _t(0x0FF6, _B, "InstanceKey")
SOURCE_KEY = _t(0x65E0, _B, "SourceKey")
PARENT_SOURCE_KEY = _t(0x65E1, _B, "ParentSourceKey")
CHANGE_KEY = _t(0x65E2, _B, "ChangeKey")
PREDECESSOR_CHANGE_LIST = _t(0x65E3, _B, "PredecessorChangeList")
DISPLAY_NAME = _t(0x3001, _U, "DisplayName")
CREATION_TIME = _t(0x3007, _T, "CreationTime")
LAST_MODIFICATION_TIME = _t(0x3008, _T, "LastModificationTime")
CONFLICT_ENTRYID = _t(0x3FF0, _B, "ConflictEntryId")
CREATOR_NAME = _t(0x3FF8, _U, "CreatorName")
CREATOR_ENTRYID = _t(0x3FF9, _B, "CreatorEntryId")
LAST_MODIFIER_NAME = _t(0x3FFA, _U, "LastModifierName")
LAST_MODIFIER_ENTRYID = _t(0x3FFB, _B, "LastModifierEntryId")
OBJECT_TYPE = _t(0x0FFE, _L, "ObjectType")
ACCESS = _t(0x0FF4, _L, "Access")
ACCESS_LEVEL = _t(0x0FF7, _L, "AccessLevel")
MAPPING_SIGNATURE = _t(0x0FF8, _B, "MappingSignature")
STORE_RECORD_KEY = _t(0x0FFA, _B, "StoreRecordKey")
STORE_ENTRYID = _t(0x0FFB, _B, "StoreEntryId")
CHANGE_NUMBER = _t(0x67A4, _I8, "ChangeNumber")
LOCAL_COMMIT_TIME = _t(0x6709, _T, "LocalCommitTime")

# --- store object ---
MDB_PROVIDER = _t(0x3414, _B, "StoreProvider")
STORE_SUPPORT_MASK = _t(0x340D, _L, "StoreSupportMask")
VALID_FOLDER_MASK = _t(0x35DF, _L, "ValidFolderMask")
IPM_SUBTREE_ENTRYID = _t(0x35E0, _B, "IpmSubtreeEntryId")
IPM_OUTBOX_ENTRYID = _t(0x35E2, _B, "IpmOutboxEntryId")
IPM_WASTEBASKET_ENTRYID = _t(0x35E3, _B, "IpmWastebasketEntryId")
IPM_SENTMAIL_ENTRYID = _t(0x35E4, _B, "IpmSentMailEntryId")
FINDER_ENTRYID = _t(0x35E7, _B, "FinderEntryId")

# --- folder ---
CONTAINER_CLASS = _t(0x3613, _U, "ContainerClass")
CONTENT_COUNT = _t(0x3602, _L, "ContentCount")
CONTENT_UNREAD = _t(0x3603, _L, "ContentUnreadCount")
ASSOC_CONTENT_COUNT = _t(0x3617, _L, "AssociatedContentCount")
SUBFOLDERS = _t(0x360A, _F, "Subfolders")
FOLDER_TYPE = _t(0x3601, _L, "FolderType")
RIGHTS = _t(0x6639, _L, "Rights")
DEPTH = _t(0x3005, _L, "Depth")
ACL_TABLE = _t(0x3FE0, _O, "AccessControlListTable")
RULES_TABLE = _t(0x3FE1, _O, "RulesTable")
ATTR_HIDDEN = _t(0x10F4, _F, "AttributeHidden")
IPM_APPOINTMENT_ENTRYID = _t(0x36D0, _B, "IpmAppointmentEntryId")
IPM_CONTACT_ENTRYID = _t(0x36D1, _B, "IpmContactEntryId")
IPM_JOURNAL_ENTRYID = _t(0x36D2, _B, "IpmJournalEntryId")
IPM_NOTE_ENTRYID = _t(0x36D3, _B, "IpmNoteEntryId")
IPM_TASK_ENTRYID = _t(0x36D4, _B, "IpmTaskEntryId")
REM_ONLINE_ENTRYID = _t(0x36D5, _B, "RemindersOnlineEntryId")
IPM_DRAFTS_ENTRYID = _t(0x36D7, _B, "IpmDraftsEntryId")
ADDITIONAL_REN_ENTRYIDS = _t(0x36D8, _MVB, "AdditionalRenEntryIds")
FREEBUSY_ENTRYIDS = _t(0x36E4, _MVB, "FreeBusyEntryIds")

# --- message ---
MESSAGE_CLASS = _t(0x001A, _U, "MessageClass")
SUBJECT = _t(0x0037, _U, "Subject")
SUBJECT_PREFIX = _t(0x003D, _U, "SubjectPrefix")
NORMALIZED_SUBJECT = _t(0x0E1D, _U, "NormalizedSubject")
ORIGINAL_SUBJECT = _t(0x0049, _U, "OriginalSubject")
CONVERSATION_TOPIC = _t(0x0070, _U, "ConversationTopic")
CONVERSATION_INDEX = _t(0x0071, _B, "ConversationIndex")
CONVERSATION_ID = _t(0x3013, _B, "ConversationId")
IMPORTANCE = _t(0x0017, _L, "Importance")
SENSITIVITY = _t(0x0036, _L, "Sensitivity")
MESSAGE_FLAGS = _t(0x0E07, _L, "MessageFlags")
READ = _t(0x0E69, _F, "Read")
MSG_STATUS = _t(0x0E17, _L, "MessageStatus")
MESSAGE_SIZE = _t(0x0E08, _L, "MessageSize")
MESSAGE_SIZE_EXTENDED = _t(0x0E08, _I8, "MessageSizeExtended")
HASATTACH = _t(0x0E1B, _F, "HasAttachments")
CLIENT_SUBMIT_TIME = _t(0x0039, _T, "ClientSubmitTime")
MESSAGE_DELIVERY_TIME = _t(0x0E06, _T, "MessageDeliveryTime")
SENDER_NAME = _t(0x0C1A, _U, "SenderName")
SENDER_EMAIL_ADDRESS = _t(0x0C1F, _U, "SenderEmailAddress")
SENDER_ADDRTYPE = _t(0x0C1E, _U, "SenderAddressType")
SENDER_ENTRYID = _t(0x0C19, _B, "SenderEntryId")
SENDER_SEARCH_KEY = _t(0x0C1D, _B, "SenderSearchKey")
SENDER_SMTP_ADDRESS = _t(0x5D01, _U, "SenderSmtpAddress")
SENT_REPRESENTING_NAME = _t(0x0042, _U, "SentRepresentingName")
SENT_REPRESENTING_EMAIL_ADDRESS = _t(0x0065, _U, "SentRepresentingEmailAddress")
SENT_REPRESENTING_ADDRTYPE = _t(0x0064, _U, "SentRepresentingAddressType")
SENT_REPRESENTING_ENTRYID = _t(0x0041, _B, "SentRepresentingEntryId")
SENT_REPRESENTING_SEARCH_KEY = _t(0x003B, _B, "SentRepresentingSearchKey")
SENT_REPRESENTING_SMTP_ADDRESS = _t(0x5D02, _U, "SentRepresentingSmtpAddress")
RCVD_REPRESENTING_NAME = _t(0x0044, _U, "ReceivedRepresentingName")
RCVD_REPRESENTING_ENTRYID = _t(0x0043, _B, "ReceivedRepresentingEntryId")
REPLY_RECIPIENT_NAMES = _t(0x0050, _U, "ReplyRecipientNames")
DISPLAY_TO = _t(0x0E04, _U, "DisplayTo")
DISPLAY_CC = _t(0x0E03, _U, "DisplayCc")
DISPLAY_BCC = _t(0x0E02, _U, "DisplayBcc")
PARENT_DISPLAY = _t(0x0E05, _U, "ParentDisplay")
INTERNET_MESSAGE_ID = _t(0x1035, _U, "InternetMessageId")
IN_REPLY_TO_ID = _t(0x1042, _U, "InReplyToId")
INTERNET_REFERENCES = _t(0x1039, _U, "InternetReferences")
TRANSPORT_MESSAGE_HEADERS = _t(0x007D, _U, "TransportMessageHeaders")
# --- reports (non-delivery) and a failed submission ---
NDR_REASON_CODE = _t(0x0C04, _L, "NonDeliveryReportReasonCode")
NDR_DIAG_CODE = _t(0x0C05, _L, "NonDeliveryReportDiagCode")
NDR_STATUS_CODE = _t(0x0C20, _L, "NonDeliveryReportStatusCode")
SUPPLEMENTARY_INFO = _t(0x0C1B, _U, "SupplementaryInfo")
REPORT_TEXT = _t(0x1001, _U, "ReportText")
BODY = _t(0x1000, _U, "Body")
HTML = _t(0x1013, _B, "Html")
RTF_COMPRESSED = _t(0x1009, _B, "RtfCompressed")
NATIVE_BODY_INFO = _t(0x1016, _L, "NativeBody")
INTERNET_CPID = _t(0x3FDE, _L, "InternetCodepage")
MESSAGE_CODEPAGE = _t(0x3FFD, _L, "MessageCodepage")
MESSAGE_LOCALE_ID = _t(0x3FF1, _L, "MessageLocaleId")
ICON_INDEX = _t(0x1080, _L, "IconIndex")
LAST_VERB_EXECUTED = _t(0x1081, _L, "LastVerbExecuted")
FLAG_STATUS = _t(0x1090, _L, "FlagStatus")
FLAG_COMPLETE_TIME = _t(0x1091, _T, "FlagCompleteTime")
TODO_ITEM_FLAGS = _t(0x0E2B, _L, "ToDoItemFlags")
READ_RECEIPT_REQUESTED = _t(0x0029, _F, "ReadReceiptRequested")
RESPONSE_REQUESTED = _t(0x0063, _F, "ResponseRequested")
START_DATE = _t(0x0060, _T, "StartDate")
END_DATE = _t(0x0061, _T, "EndDate")
ASSOCIATED = _t(0x67AA, _F, "Associated")
MESSAGE_RECIPIENTS = _t(0x0E12, _O, "MessageRecipients")
MESSAGE_ATTACHMENTS = _t(0x0E13, _O, "MessageAttachments")

# --- recipient rows ---
RECIPIENT_TYPE = _t(0x0C15, _L, "RecipientType")
EMAIL_ADDRESS = _t(0x3003, _U, "EmailAddress")
ADDRTYPE = _t(0x3002, _U, "AddressType")
SMTP_ADDRESS = _t(0x39FE, _U, "SmtpAddress")
ROWID = _t(0x3000, _L, "RowId")
DISPLAY_TYPE = _t(0x3900, _L, "DisplayType")
RECIPIENT_FLAGS = _t(0x5FFD, _L, "RecipientFlags")
RECIPIENT_TRACKSTATUS = _t(0x5FFF, _L, "RecipientTrackStatus")
RECIPIENT_ENTRYID = _t(0x5FF7, _B, "RecipientEntryId")
RECIPIENT_DISPLAY_NAME = _t(0x5FF6, _U, "RecipientDisplayName")

# --- attachment rows ---
ATTACH_NUM = _t(0x0E21, _L, "AttachNumber")
ATTACH_METHOD = _t(0x3705, _L, "AttachMethod")
ATTACH_LONG_FILENAME = _t(0x3707, _U, "AttachLongFilename")
ATTACH_FILENAME = _t(0x3704, _U, "AttachFilename")
ATTACH_EXTENSION = _t(0x3703, _U, "AttachExtension")
ATTACH_DATA_BIN = _t(0x3701, _B, "AttachDataBinary")
ATTACH_DATA_OBJ = _t(0x3701, _O, "AttachDataObject")
ATTACH_SIZE = _t(0x0E20, _L, "AttachSize")
ATTACH_MIME_TAG = _t(0x370E, _U, "AttachMimeTag")
ATTACH_CONTENT_ID = _t(0x3712, _U, "AttachContentId")
ATTACH_FLAGS = _t(0x3714, _L, "AttachFlags")
RENDERING_POSITION = _t(0x370B, _L, "RenderingPosition")
ATTACHMENT_HIDDEN = _t(0x7FFE, _F, "AttachmentHidden")

# --- contact (tagged part) ---
GIVEN_NAME = _t(0x3A06, _U, "GivenName")
SURNAME = _t(0x3A11, _U, "Surname")
MIDDLE_NAME = _t(0x3A44, _U, "MiddleName")
INITIALS = _t(0x3A0A, _U, "Initials")
DISPLAY_NAME_PREFIX = _t(0x3A45, _U, "DisplayNamePrefix")
GENERATION = _t(0x3A05, _U, "Generation")
NICKNAME = _t(0x3A4F, _U, "Nickname")
COMPANY_NAME = _t(0x3A16, _U, "CompanyName")
TITLE = _t(0x3A17, _U, "Title")
DEPARTMENT_NAME = _t(0x3A18, _U, "DepartmentName")
BUSINESS_TELEPHONE_NUMBER = _t(0x3A08, _U, "BusinessTelephoneNumber")
HOME_TELEPHONE_NUMBER = _t(0x3A09, _U, "HomeTelephoneNumber")
MOBILE_TELEPHONE_NUMBER = _t(0x3A1C, _U, "MobileTelephoneNumber")
BUSINESS_FAX_NUMBER = _t(0x3A24, _U, "BusinessFaxNumber")
STREET_ADDRESS = _t(0x3A29, _U, "StreetAddress")
LOCALITY = _t(0x3A27, _U, "Locality")
STATE_OR_PROVINCE = _t(0x3A28, _U, "StateOrProvince")
POSTAL_CODE = _t(0x3A2A, _U, "PostalCode")
COUNTRY = _t(0x3A26, _U, "Country")
HOME_ADDRESS_STREET = _t(0x3A5D, _U, "HomeAddressStreet")
BUSINESS_HOME_PAGE = _t(0x3A51, _U, "BusinessHomePage")
BIRTHDAY = _t(0x3A42, _T, "Birthday")
WEDDING_ANNIVERSARY = _t(0x3A41, _T, "WeddingAnniversary")
PROFESSION = _t(0x3A46, _U, "Profession")
PRIMARY_TELEPHONE_NUMBER = _t(0x3A1A, _U, "PrimaryTelephoneNumber")
BUSINESS2_TELEPHONE_NUMBER = _t(0x3A1B, _U, "Business2TelephoneNumber")
CAR_TELEPHONE_NUMBER = _t(0x3A1E, _U, "CarTelephoneNumber")
OTHER_TELEPHONE_NUMBER = _t(0x3A1F, _U, "OtherTelephoneNumber")
PAGER_TELEPHONE_NUMBER = _t(0x3A21, _U, "PagerTelephoneNumber")
PRIMARY_FAX_NUMBER = _t(0x3A23, _U, "PrimaryFaxNumber")
HOME_FAX_NUMBER = _t(0x3A25, _U, "HomeFaxNumber")
HOME2_TELEPHONE_NUMBER = _t(0x3A2F, _U, "Home2TelephoneNumber")
PERSONAL_HOME_PAGE = _t(0x3A50, _U, "PersonalHomePage")
HOME_ADDRESS_CITY = _t(0x3A59, _U, "HomeAddressCity")
HOME_ADDRESS_COUNTRY = _t(0x3A5A, _U, "HomeAddressCountry")
HOME_ADDRESS_POSTAL_CODE = _t(0x3A5B, _U, "HomeAddressPostalCode")
HOME_ADDRESS_STATE_OR_PROVINCE = _t(0x3A5C, _U, "HomeAddressStateOrProvince")
OTHER_ADDRESS_CITY = _t(0x3A5F, _U, "OtherAddressCity")
OTHER_ADDRESS_COUNTRY = _t(0x3A60, _U, "OtherAddressCountry")
OTHER_ADDRESS_POSTAL_CODE = _t(0x3A61, _U, "OtherAddressPostalCode")
OTHER_ADDRESS_STATE_OR_PROVINCE = _t(0x3A62, _U, "OtherAddressStateOrProvince")
OTHER_ADDRESS_STREET = _t(0x3A63, _U, "OtherAddressStreet")
ATTACHMENT_CONTACT_PHOTO = _t(0x7FFF, _F, "AttachmentContactPhoto")

# --- tables, ACL, rules, delegates ---
ROW_TYPE = _t(0x0FF5, _L, "RowType")
INST_ID = _t(0x674D, _I8, "InstID")
INSTANCE_NUM = _t(0x674E, _L, "InstanceNum")
MEMBER_ID = _t(0x6671, _I8, "MemberId")
MEMBER_NAME = _t(0x6672, _U, "MemberName")
MEMBER_RIGHTS = _t(0x6673, _L, "MemberRights")
RULE_ID = _t(0x6674, _I8, "RuleId")
RULE_SEQUENCE = _t(0x6676, _L, "RuleSequence")
RULE_STATE = _t(0x6677, _L, "RuleState")
RULE_USER_FLAGS = _t(0x6678, _L, "RuleUserFlags")
RULE_CONDITION = _t(0x6679, PropType.SRESTRICTION, "RuleCondition")
RULE_ACTIONS = _t(0x6680, PropType.ACTIONS, "RuleActions")
RULE_PROVIDER = _t(0x6681, _U, "RuleProvider")
RULE_NAME = _t(0x6682, _U, "RuleName")
RULE_LEVEL = _t(0x6683, _L, "RuleLevel")
RULE_PROVIDER_DATA = _t(0x6684, _B, "RuleProviderData")
EXTENDED_RULE_MSG_ACTIONS = _t(0x0E99, _B, "ExtendedRuleMessageActions")
EXTENDED_RULE_MSG_CONDITION = _t(0x0E9A, _B, "ExtendedRuleMessageCondition")
RW_RULES_STREAM = _t(0x6802, _B, "RwRulesStream")
SCHDINFO_DELEGATE_NAMES = _t(0x6844, _MVU, "ScheduleInfoDelegateNames")
SCHDINFO_DELEGATE_NAMES_W = _t(0x684A, _MVU, "ScheduleInfoDelegateNamesW")
SCHDINFO_DELEGATE_ENTRYIDS = _t(0x6845, _MVB, "ScheduleInfoDelegateEntryIds")
DELEGATE_FLAGS = _t(0x686B, _MVL, "DelegateFlags")
SCHDINFO_BOSS_WANTS_COPY = _t(0x6842, _F, "ScheduleInfoDelegatorWantsCopy")
SCHDINFO_BOSS_WANTS_INFO = _t(0x684B, _F, "ScheduleInfoDelegatorWantsInfo")
SCHDINFO_DONT_MAIL_DELEGATES = _t(0x6843, _F, "ScheduleInfoDontMailDelegates")
DELEGATED_BY_RULE = _t(0x3FE3, _F, "DelegatedByRule")


def _build_table() -> dict[int, TagInfo]:
    # PR names come from the constant names above; every registered tag needs one.
    pr_names = {
        value: "PR_" + name
        for name, value in globals().items()
        if name.isupper() and not name.startswith("_") and value in _PIDTAGS
    }
    missing = set(_PIDTAGS) - set(pr_names)
    if missing:
        raise RuntimeError(f"tags without a constant: {sorted(missing)}")
    return {tag: TagInfo(tag, pidtag, pr_names[tag]) for tag, pidtag in _PIDTAGS.items()}


TAGS: dict[int, TagInfo] = _build_table()

_BY_NAME: dict[str, TagInfo] = {}
for _info in TAGS.values():
    _BY_NAME[_info.pidtag.lower()] = _info
    _BY_NAME[_info.pr_name.lower()] = _info
del _info

_STRING_BASES = (PropType.UNICODE, PropType.UNICODE | _MV)


def by_tag(tag: int) -> TagInfo | None:
    """The table entry for exactly this tag (type included), or None."""
    return TAGS.get(tag)


def by_name(name: str) -> TagInfo | None:
    """Look up "PidTagSubject", "PR_SUBJECT", "PR_SUBJECT_W" or "PR_SUBJECT_A" (case-insensitive).

    The _A form returns a TagInfo for the PT_STRING8 variant of the same ID, which is not
    itself in TAGS.
    """
    key = name.lower()
    info = _BY_NAME.get(key)
    if info is not None:
        return info
    if not key.startswith("pr_") or len(key) < 6 or key[-2:] not in ("_w", "_a"):
        return None
    info = _BY_NAME.get(key[:-2])
    if info is None or info.type not in _STRING_BASES:
        return None
    if key.endswith("_w"):
        return info
    narrow = info.tag - PropType.UNICODE + PropType.STRING8
    return TagInfo(narrow, info.pidtag, info.pr_name + "_A")
