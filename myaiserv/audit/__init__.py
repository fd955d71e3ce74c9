"""The audit log: security-relevant events, queryable by admins."""
