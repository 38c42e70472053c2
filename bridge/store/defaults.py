"""The default folder set a new store is created with (MAPI.md §8, MS-OXOSFLD)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.model import classes, flags


@dataclass(frozen=True, slots=True)
class DefaultFolder:
    role: str
    name: str
    parent: str | None
    container_class: str | None
    folder_type: int = flags.FOLDER_GENERIC


DEFAULT_FOLDERS: tuple[DefaultFolder, ...] = (
    DefaultFolder("root", "Root", None, None, flags.FOLDER_ROOT),
    DefaultFolder("ipm_subtree", "Top of Information Store", "root", None),
    DefaultFolder("inbox", "Inbox", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("outbox", "Outbox", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("sent", "Sent Items", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("deleted", "Deleted Items", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("drafts", "Drafts", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("junk", "Junk E-mail", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("calendar", "Calendar", "ipm_subtree", classes.IPF_APPOINTMENT),
    DefaultFolder("contacts", "Contacts", "ipm_subtree", classes.IPF_CONTACT),
    DefaultFolder("tasks", "Tasks", "ipm_subtree", classes.IPF_TASK),
    DefaultFolder("notes", "Notes", "ipm_subtree", classes.IPF_STICKYNOTE),
    DefaultFolder("journal", "Journal", "ipm_subtree", classes.IPF_JOURNAL),
    DefaultFolder("sync_issues", "Sync Issues", "ipm_subtree", classes.IPF_NOTE),
    DefaultFolder("conflicts", "Conflicts", "sync_issues", classes.IPF_NOTE),
    DefaultFolder("local_failures", "Local Failures", "sync_issues", classes.IPF_NOTE),
    DefaultFolder("server_failures", "Server Failures", "sync_issues", classes.IPF_NOTE),
    # A search folder: its criteria are written by bridge/store/search_folders.py.
    DefaultFolder("reminders", "Reminders", "root", classes.OUTLOOK_REMINDER, flags.FOLDER_SEARCH),
)

ROLES = tuple(f.role for f in DEFAULT_FOLDERS)
