"""incidentctl: Grafana/Alertmanager webhooks → raw archive → incidents → Slack digests."""

__version__ = "0.1.0"
