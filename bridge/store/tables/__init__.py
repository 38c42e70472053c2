"""The MAPI table engine: restrictions and sorts compiled to SQL, stateful views."""
