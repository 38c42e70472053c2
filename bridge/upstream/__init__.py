"""Adapters to upstream servers (IMAP now; SMTP, CalDAV, CardDAV later). They know nothing
of the store or of the sync engine."""
