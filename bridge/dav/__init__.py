"""The store as a WebDAV tree (wsgidav provider, mounted at /dav/)."""
