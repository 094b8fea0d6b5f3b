"""Reusable test parts that run for real (HTTP servers on 127.0.0.1); see feedserver.FeedServer."""
