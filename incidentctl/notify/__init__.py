"""Outbox → silences → routes → digest → Slack."""
