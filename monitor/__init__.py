"""monitor: a news and event-stream monitoring and alerting daemon."""

__version__ = "0.1.0"
