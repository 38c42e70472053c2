"""kbridge: a local offline bridge for a groupware mailbox."""

__version__ = "0.1.0"
