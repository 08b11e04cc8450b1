"""Settings routes: read and change the plugin's settings at run time (system admins)."""
from __future__ import annotations

from typing import Any

from flask import g

from plugin.api import Blueprint, authenticate
from plugin.api.schemas import SettingsChange, SettingsChangeSchema, SettingsSchema


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/settings blueprint bound to the app's settings admin."""
    blp = Blueprint("settings", __name__, url_prefix="/api/v0/settings",
                    description="The plugin's settings, changed without a restart (system admins).")
    admin = components.settings_admin

    @blp.before_request
    def _authenticate() -> None:
        # Only system admins get further: no one else's body is even read.
        authenticate(components.settings.current.host_secret)
        admin.require_admin(g.user_id)

    @blp.route("", methods=["GET"])
    @blp.response(200, SettingsSchema)
    def show() -> Any:
        """Every setting, its value (secrets masked), its source and whether it may change now."""
        return {"settings": admin.show(g.user_id)}

    @blp.route("", methods=["PUT"])
    @blp.arguments(SettingsChangeSchema)
    @blp.response(200, SettingsSchema)
    def update(change: SettingsChange) -> Any:
        """Change settings: a JSON object of keys to new values; all or nothing."""
        return {"settings": admin.update(g.user_id, change.values)}

    return blp
