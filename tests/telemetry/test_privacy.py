"""No text people type, no username and no e-mail ever leaves the server in a telemetry byte."""
from __future__ import annotations

import json
import string

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from plugin.store.tables import chat_users
from tests.conftest import ALICE, BOB
from tests.telemetry.dataplane import wait_until
from tests.telemetry.lifecycle import drive_every_mutation, drive_status_updates, drive_the_timeline

# A canary is long, starts with capitals and may hold spaces and non-ASCII letters,
# so it can never occur by chance inside an id, a version or an action name.
_ALPHABET = string.ascii_letters + string.digits + " -_äöü漢字"
canaries = st.text(_ALPHABET, min_size=6, max_size=30).map(lambda text: f"CANARY{text}".strip())
EMAIL = "alice.canary@example.com"


def _leaks(data: bytes, canary: str) -> bool:
    text = data.decode("utf-8")
    # The SDK writes JSON with non-ASCII escaped; look for both spellings.
    return canary in text or json.dumps(canary)[1:-1] in text


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=canaries, description=canaries, stage=canaries, task=canaries, title=canaries, username=canaries,
       note=canaries, update=canaries)
def test_no_canary_username_or_email_in_any_byte_sent(tclient, tcomponents, dataplane, name, description, stage,
                                                      task, title, username, note, update):
    with tcomponents.db.write_engine.begin() as connection:
        connection.execute(sa.delete(chat_users))
        connection.execute(sa.insert(chat_users).values(id=ALICE, username=username[:64], create_at=1))
        connection.execute(sa.insert(chat_users).values(id=BOB, username=EMAIL, create_at=1))
    before = len(dataplane.delivered())
    incident_id, expected = drive_every_mutation(tclient, tcomponents, name=name[:64],
                                                 description=f"{description} {EMAIL}", stages=[stage, stage + "2"],
                                                 tasks=[task, task + "b"], new_title=title)
    expected += drive_status_updates(tclient, tcomponents, name=name[:64], update=f"{update} {EMAIL}")[1]
    expected += drive_the_timeline(tclient, incident_id, note=note)
    wait_until(lambda: len(dataplane.delivered()) >= before + len(expected))
    sent = dataplane.all_bytes()
    actions = [message["properties"]["Action"] for message in dataplane.delivered()[before:]]
    assert actions[-2:] == ["add_timeline_event", "remove_timeline_event"]
    for canary in (name[:64], description, stage, task, title, username[:64], EMAIL, note, update, "CANARY"):
        assert not _leaks(sent, canary), canary
