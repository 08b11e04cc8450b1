"""The sender builds every message exactly as the SDK's ``Client.track`` would (no database, no network)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rudderstack.analytics.client import Client

from plugin.telemetry.catalogue import EVENTS, Kind
from plugin.telemetry.dispatcher import Destination, RudderSender
from plugin.telemetry.outbox import OutboxEvent

DESTINATION = Destination("http://127.0.0.1:9", "write-key")
SDK = Client(DESTINATION.write_key, host=DESTINATION.data_plane_url, send=False, sync_mode=True)
_ID = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=26, max_size=26)
_VERSIONS = st.sampled_from(["local", "9.11.0", "10.0", "5.31.2.1", "9.11.0-rc1", "7.8.0+build.7"])


def _values(kind: Kind) -> st.SearchStrategy:
    """Values the catalogue accepts for kind."""
    return {
        "id": _ID, "optional id": st.one_of(st.just(""), _ID), "bool": st.booleans(),
        "int": st.integers(0, 2 ** 53 - 1), "stage index": st.integers(-1, 9_999), "version": _VERSIONS,
        "severity rank": st.integers(-1, 1_000),
        "enum": st.sampled_from(kind.choices or ("",)),
    }[kind.name]


def _catalogued_event(name: str, action: str) -> st.SearchStrategy:
    props = EVENTS[name].properties(action)
    values = st.fixed_dictionaries({prop.key: _values(prop.kind) for prop in props if prop.key != "Action"})
    recorded_at = st.integers(0, 4_102_444_800_000)  # up to 2100
    return st.builds(lambda properties, at: OutboxEvent(1, str(uuid.uuid4()), name, {"Action": action, **properties},
                                                        at), values, recorded_at)


def sdk_message(event: OutboxEvent) -> dict:
    """What the SDK's own client builds for an outbox event."""
    _ok, message = SDK.track(
        user_id=event.properties.get("diagnosticID"), event=event.event, properties=dict(event.properties),
        context={"ip": "0.0.0.0"}, anonymous_id=None, message_id=event.message_id,
        timestamp=datetime.fromtimestamp(event.recorded_at / 1000, tz=timezone.utc))
    return message


EVERY_ACTION = [(name, action.name) for name, event in EVENTS.items() for action in event.actions]


@pytest.mark.parametrize(("name", "action"), EVERY_ACTION)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_catalogued_event_is_built_exactly_as_the_sdk_builds_it(name, action, data):
    event = data.draw(_catalogued_event(name, action))
    built = RudderSender(DESTINATION).message(event)
    expected = sdk_message(event)
    assert built == expected
    # Byte for byte, key order included: the audit shows admins what was sent.
    assert json.dumps(built) == json.dumps(expected)


def test_messages_share_no_mutable_part():
    sender = RudderSender(DESTINATION)
    event = OutboxEvent(1, str(uuid.uuid4()), "incident", {"Action": "end", "diagnosticID": "d" * 26}, 0)
    first, second = sender.message(event), sender.message(event)
    first["context"]["library"]["version"] = "changed"
    first["properties"]["Action"] = "changed"
    assert second["context"]["library"]["version"] != "changed"
    assert second["properties"]["Action"] == event.properties["Action"] == "end"


@pytest.mark.parametrize("odd", [1.5, None, ["a", 1], {"nested": True}])
def test_a_value_outside_the_catalogues_kinds_is_left_to_the_sdk(odd):
    event = OutboxEvent(2, str(uuid.uuid4()), "incident", {"Action": "end", "diagnosticID": "d" * 26, "Odd": odd},
                        1_700_000_000_123)
    built = RudderSender(DESTINATION).message(event)
    assert built == sdk_message(event)
    assert json.dumps(built) == json.dumps(sdk_message(event))


def test_an_event_without_a_diagnostic_id_is_refused_as_the_sdk_refuses_it():
    event = OutboxEvent(3, str(uuid.uuid4()), "incident", {"Action": "end"}, 0)
    with pytest.raises(AssertionError):
        RudderSender(DESTINATION).message(event)
