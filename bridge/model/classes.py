"""Message classes (PR_MESSAGE_CLASS) and folder container classes (PR_CONTAINER_CLASS)."""

from __future__ import annotations

# --- message classes ---
IPM = "IPM"
IPM_NOTE = "IPM.Note"
IPM_NOTE_SMIME = "IPM.Note.SMIME"
IPM_NOTE_SMIME_MULTIPART_SIGNED = "IPM.Note.SMIME.MultipartSigned"
IPM_NOTE_SECURE = "IPM.Note.Secure"
IPM_NOTE_SECURE_SIGN = "IPM.Note.Secure.Sign"
IPM_NOTE_OOF_TEMPLATE = "IPM.Note.Rules.OofTemplate.Microsoft"
IPM_NOTE_REPLY_TEMPLATE = "IPM.Note.Rules.ReplyTemplate.Microsoft"
IPM_POST = "IPM.Post"
IPM_APPOINTMENT = "IPM.Appointment"
IPM_APPOINTMENT_EXCEPTION = "IPM.OLE.CLASS.{00061055-0000-0000-C000-000000000046}"
IPM_SCHEDULE_MEETING_REQUEST = "IPM.Schedule.Meeting.Request"
IPM_SCHEDULE_MEETING_CANCELED = "IPM.Schedule.Meeting.Canceled"
IPM_SCHEDULE_MEETING_RESP_POS = "IPM.Schedule.Meeting.Resp.Pos"
IPM_SCHEDULE_MEETING_RESP_NEG = "IPM.Schedule.Meeting.Resp.Neg"
IPM_SCHEDULE_MEETING_RESP_TENT = "IPM.Schedule.Meeting.Resp.Tent"
IPM_CONTACT = "IPM.Contact"
IPM_DISTLIST = "IPM.DistList"
IPM_TASK = "IPM.Task"
IPM_TASKREQUEST = "IPM.TaskRequest"
IPM_TASKREQUEST_ACCEPT = "IPM.TaskRequest.Accept"
IPM_TASKREQUEST_DECLINE = "IPM.TaskRequest.Decline"
IPM_TASKREQUEST_UPDATE = "IPM.TaskRequest.Update"
IPM_STICKYNOTE = "IPM.StickyNote"
IPM_ACTIVITY = "IPM.Activity"
IPM_OUTLOOK_RECALL = "IPM.Outlook.Recall"
IPM_RECALL_REPORT_SUCCESS = "IPM.Recall.Report.Success"
IPM_RECALL_REPORT_FAILURE = "IPM.Recall.Report.Failure"
REPORT_NDR = "REPORT.IPM.Note.NDR"
REPORT_DR = "REPORT.IPM.Note.DR"
REPORT_IPNRN = "REPORT.IPM.Note.IPNRN"
REPORT_IPNNRN = "REPORT.IPM.Note.IPNNRN"
IPM_RULE_ORGANIZER = "IPM.RuleOrganizer"
IPM_EXTENDED_RULE_MESSAGE = "IPM.ExtendedRule.Message"
IPC_DEFERRED_ACTION = "IPC.Microsoft Exchange 4.0.Deferred Action"
IPM_DOCUMENT_PREFIX = "IPM.Document."

# --- container classes ---
IPF_NOTE = "IPF.Note"
IPF_APPOINTMENT = "IPF.Appointment"
IPF_CONTACT = "IPF.Contact"
IPF_TASK = "IPF.Task"
IPF_STICKYNOTE = "IPF.StickyNote"
IPF_JOURNAL = "IPF.Journal"
IPF_CONFIGURATION = "IPF.Configuration"
IPF_CONTACT_QUICK_CONTACTS = "IPF.Contact.MOC.QuickContacts"
IPF_CONTACT_IM_CONTACT_LIST = "IPF.Contact.MOC.ImContactList"
IPF_CONTACT_GAL_CONTACTS = "IPF.Contact.GalContacts"
IPF_NOTE_OUTLOOK_HOMEPAGE = "IPF.Note.OutlookHomepage"
OUTLOOK_REMINDER = "Outlook.Reminder"

# Message-class prefix (matched case-insensitively, whole dotted components) → container class.
_CONTAINER_BY_PREFIX: tuple[tuple[str, str], ...] = (
    (IPM_APPOINTMENT, IPF_APPOINTMENT),
    ("IPM.Schedule", IPF_APPOINTMENT),
    ("IPM.OLE.CLASS.{00061055-0000-0000-C000-000000000046}", IPF_APPOINTMENT),
    (IPM_CONTACT, IPF_CONTACT),
    (IPM_DISTLIST, IPF_CONTACT),
    (IPM_TASK, IPF_TASK),
    (IPM_TASKREQUEST, IPF_TASK),
    (IPM_STICKYNOTE, IPF_STICKYNOTE),
    (IPM_ACTIVITY, IPF_JOURNAL),
)


def _has_prefix(message_class: str, prefix: str) -> bool:
    mc, p = message_class.lower(), prefix.lower()
    return mc == p or mc.startswith(p + ".")


def container_class_for(message_class: str) -> str:
    """The container class of the folder an item of this class belongs in; IPF.Note by default."""
    for prefix, container in _CONTAINER_BY_PREFIX:
        if _has_prefix(message_class, prefix):
            return container
    return IPF_NOTE


MAX_MESSAGE_CLASS_LEN = 255


def is_valid_message_class(s: str) -> bool:
    """Non-empty printable ASCII, no spaces at either end, at most 255 characters."""
    return (
        0 < len(s) <= MAX_MESSAGE_CLASS_LEN
        and all(" " <= c <= "~" for c in s)
        and s == s.strip(" ")
    )


_DEFAULT_CLASS_OF_CONTAINER = {
    IPF_APPOINTMENT: IPM_APPOINTMENT,
    IPF_CONTACT: IPM_CONTACT,
    IPF_TASK: IPM_TASK,
    IPF_STICKYNOTE: IPM_STICKYNOTE,
    IPF_JOURNAL: IPM_ACTIVITY,
}


def message_class_for(container_class: str | None) -> str:
    """The class of a new item in a folder of this container class (IPF.Note → IPM.Note)."""
    if container_class:
        for prefix, message_class in _DEFAULT_CLASS_OF_CONTAINER.items():
            if container_class == prefix or container_class.startswith(prefix + "."):
                return message_class
    return IPM_NOTE
