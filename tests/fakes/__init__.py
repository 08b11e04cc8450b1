"""Fakes of the outside world that run as real servers on loopback."""
