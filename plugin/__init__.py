"""incident-response: an incident-management backend for Mattermost-style chat servers."""

__version__ = "0.1.0"
