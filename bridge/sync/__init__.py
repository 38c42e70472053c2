"""Reconciliation with the upstream server (engine, scheduler, connectivity state)."""
