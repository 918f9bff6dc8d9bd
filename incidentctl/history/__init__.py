"""The archive as history: export, replay, rebuild, simulate, reports and statistics."""
