"""The HTTP side of a stratum node: JSON API, Prometheus metrics, dashboard."""
