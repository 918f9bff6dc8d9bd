"""Running it: doctor, retention, the scheduler, GC tuning, the demo and the Grafana files."""
