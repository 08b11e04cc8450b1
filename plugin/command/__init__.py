"""The /incident slash command: a pure parser, a runner over the service, the HTTP endpoint."""
