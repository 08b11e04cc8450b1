"""A webhook change made through one process is in force in every other once it has returned."""
from __future__ import annotations

import sqlalchemy as sa

from plugin.store.tables import webhook_deliveries
from tests.conftest import ADMIN, as_user
from tests.webhooks.conftest import make_app, register, start_incident, stop

URL = "https://hooks.example.com/incidents"


def deliveries(db, hook_id: str) -> int:
    with db.read_engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)
                                  .where(webhook_deliveries.c.webhook_id == hook_id)).scalar_one()


def test_webhooks_created_changed_and_deleted_elsewhere_are_used_by_the_next_change(happ, hclient, hook_settings,
                                                                                     names, db):
    # Two apps on one database, as two workers are: "here" makes the changes that write
    # deliveries and has read the webhooks before any existed; "there" changes the webhooks.
    there = make_app(hook_settings, names)
    try:
        for application in (happ, there):
            application.extensions["incident"].webhook_sender.stop(5)  # deliveries stay countable
        start_incident(hclient, "before any webhook")
        assert happ.extensions["incident"].db.webhooks_in_force() == []
        admin = there.test_client()

        hook = register(admin, URL, ["incident_created"])
        start_incident(hclient, "after the webhook")
        assert deliveries(db, hook["id"]) == 1

        changed = admin.patch(f"/api/v0/webhooks/{hook['id']}", headers=as_user(ADMIN),
                              json={"events": ["incident_ended"]})
        assert changed.status_code == 200
        incident = start_incident(hclient, "created, not sent")
        assert deliveries(db, hook["id"]) == 1
        assert hclient.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ADMIN)).status_code == 200
        assert deliveries(db, hook["id"]) == 2

        assert admin.delete(f"/api/v0/webhooks/{hook['id']}", headers=as_user(ADMIN)).status_code == 204
        start_incident(hclient, "after the delete")  # a delivery to a deleted webhook would fail its insert
        assert happ.extensions["incident"].db.webhooks_in_force() == []
    finally:
        stop(there)


def test_a_change_of_webhooks_raises_the_settings_version(hclient, happ):
    db = happ.extensions["incident"].db
    before = db.settings_version()
    register(hclient, URL)
    assert db.settings_version() > before
