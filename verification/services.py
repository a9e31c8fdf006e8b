"""Verification services (campaigns, confirmations, flags)."""
