"""Events reach a loopback data plane through the real SDK: exactly, once, and only while switched on."""
from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from plugin.events import PlaybookEvent
from plugin.model import Checklist, ChecklistItem, Playbook
from plugin.service import NewChecklist, NewIncident
from plugin.store.tables import telemetry_outbox
from tests.conftest import ADMIN, ALICE, BOB, CAROL, TEAM, as_user
from tests.telemetry.conftest import make_app
from tests.telemetry.dataplane import DataPlane, wait_until
from tests.telemetry.lifecycle import drive_every_mutation, drive_status_updates, drive_the_timeline

COMMON = {"diagnosticID", "serverVersion", "pluginVersion", "eventTimeStamp"}
METADATA = {"incidentID", "IsActive", "CommanderUserID", "TeamID", "CreatedAt", "PostID", "NumChecklists",
            "TotalChecklistItems", "ActiveStage", "UserActualID"}
EXTRA = {"create": {"Public", "SeverityRank"}, "modify_task_state": {"NewState", "WasCommander", "WasAssignee"},
         "add_timeline_event": {"EventType", "Backdated", "HasPost", "NumDetails"},
         "remove_timeline_event": {"EventType", "WasCreator"},
         "change_broadcast_channels": {"NumBroadcastChannels"},
         "update_status": {"ReminderSeconds", "NumBroadcastChannels"}, "change_reminder": {"ReminderSeconds"}}


def _pending(components) -> int:
    with components.db.read_engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(telemetry_outbox)).scalar_one()


def test_full_lifecycle_sends_exactly_the_expected_events_with_exact_keys(tclient, tcomponents, dataplane):
    incident_id, expected = drive_every_mutation(tclient, tcomponents)
    expected += drive_the_timeline(tclient, incident_id)
    messages = wait_until(lambda: len(dataplane.delivered()) >= len(expected) and dataplane.delivered())
    assert [(m["event"], m["properties"]["Action"]) for m in messages] == expected
    diagnostic_id = tcomponents.host.server_facts().diagnostic_id
    for message in messages:
        action = message["properties"]["Action"]
        assert set(message["properties"]) == {"Action"} | COMMON | METADATA | EXTRA.get(action, set())
        assert message["type"] == "track" and message["userId"] == diagnostic_id
        assert message["anonymousId"] is None and message["context"]["ip"] == "0.0.0.0"
        assert message["properties"]["incidentID"] == incident_id
        assert message["properties"]["UserActualID"] == ALICE
        assert message["properties"]["diagnosticID"] == diagnostic_id
        assert message["properties"]["pluginVersion"] == "0.1.0"
        assert message["properties"]["serverVersion"] == "local"
    by_action = {m["properties"]["Action"]: m["properties"] for m in messages}
    assert by_action["create"]["Public"] is False and by_action["create"]["PostID"] == ""
    assert by_action["create"]["SeverityRank"] == -1
    assert by_action["create"]["NumChecklists"] == 2 and by_action["create"]["TotalChecklistItems"] == 4
    assert by_action["change_stage"]["ActiveStage"] == 1
    assert by_action["add_task"]["TotalChecklistItems"] == 5
    assert by_action["remove_task"]["TotalChecklistItems"] == 4
    assert (by_action["modify_task_state"]["NewState"], by_action["modify_task_state"]["WasCommander"],
            by_action["modify_task_state"]["WasAssignee"]) == ("in_progress", True, False)
    assert by_action["change_commander"]["CommanderUserID"] == BOB
    assert by_action["end"]["IsActive"] is False and by_action["restart"]["IsActive"] is True
    assert {key: by_action["add_timeline_event"][key] for key in EXTRA["add_timeline_event"]} == {
        "EventType": "note", "Backdated": True, "HasPost": False, "NumDetails": 1}
    assert {key: by_action["remove_timeline_event"][key] for key in EXTRA["remove_timeline_event"]} == {
        "EventType": "note", "WasCreator": True}
    assert len(set(dataplane.delivered_ids())) == len(expected)


def test_requests_reach_v1_batch_with_basic_auth_write_key_and_gzip(tclient, tcomponents, dataplane):
    drive_every_mutation(tclient, tcomponents)
    wait_until(lambda: len(dataplane.delivered()) >= 11)
    assert {r.path for r in dataplane.requests} == {"/v1/batch"}
    assert {r.write_key for r in dataplane.requests} == {dataplane.write_key}
    assert {r.content_encoding for r in dataplane.requests} == {"gzip"}


def test_status_updates_send_their_period_and_channel_count_and_never_their_text(tclient, tcomponents, dataplane):
    incident_id, expected = drive_status_updates(tclient, tcomponents, update="CANARYUPDATE rolled back")
    messages = wait_until(lambda: len(dataplane.delivered()) >= len(expected) and dataplane.delivered())
    assert [(m["event"], m["properties"]["Action"]) for m in messages] == expected
    for message in messages:
        action = message["properties"]["Action"]
        assert set(message["properties"]) == {"Action"} | COMMON | METADATA | EXTRA.get(action, set())
        assert message["properties"]["incidentID"] == incident_id
    by_action = {m["properties"]["Action"]: m["properties"] for m in messages}
    assert (by_action["update_status"]["ReminderSeconds"], by_action["update_status"]["NumBroadcastChannels"]) == (
        1800, 1)
    assert by_action["change_reminder"]["ReminderSeconds"] == 0
    assert by_action["change_broadcast_channels"]["NumBroadcastChannels"] == 1
    assert b"CANARYUPDATE" not in dataplane.all_bytes()


def test_message_id_is_the_outbox_id_and_the_audit_keeps_the_message_as_sent(tclient, tcomponents, dataplane):
    dataplane.stop()
    drive_every_mutation(tclient, tcomponents)
    with tcomponents.db.read_engine.connect() as connection:
        recorded = list(connection.execute(sa.select(telemetry_outbox.c.message_id)).scalars())
    assert len(recorded) == 11
    dataplane.start()
    wait_until(lambda: _pending(tcomponents) == 0 and len(dataplane.delivered()) >= 11)
    assert sorted(dataplane.delivered_ids()) == sorted(recorded)
    report = tclient.get("/api/v0/telemetry?limit=50", headers=as_user(ADMIN)).json
    assert report["recent"] == list(reversed(dataplane.delivered()))
    assert report["sent"] == 11 and report["pending"] == 0


def test_data_plane_down_then_up_delivers_every_event_once(tclient, tcomponents, dataplane):
    dataplane.stop()
    _, expected = drive_every_mutation(tclient, tcomponents)
    wait_until(lambda: (tcomponents.telemetry.outbox.last_error() or {}).get("error", "").startswith(
        "could not reach"))
    assert _pending(tcomponents) == len(expected)
    dataplane.start()
    wait_until(lambda: len(set(dataplane.delivered_ids())) == len(expected))
    wait_until(lambda: _pending(tcomponents) == 0)
    assert len(dataplane.delivered_ids()) == len(expected)
    assert tcomponents.telemetry.report()["sent"] == len(expected)


def test_data_plane_answering_429_and_500_gets_each_event_once_after_retries(tclient, tcomponents, dataplane):
    dataplane.fail_next(429, 500, 503)
    _, expected = drive_every_mutation(tclient, tcomponents)
    wait_until(lambda: len(set(dataplane.delivered_ids())) == len(expected))
    assert sorted(r.status for r in dataplane.requests if r.status != 200) == [429, 500, 503]
    assert len(dataplane.delivered_ids()) == len(expected)
    assert tcomponents.telemetry.report()["last_error"]["error"] == "data plane answered HTTP 503"


def test_a_hanging_data_plane_neither_slows_requests_nor_stops_shutdown(tclient, tcomponents, dataplane):
    dataplane.hang()
    user = as_user(ALICE)
    started = time.perf_counter()
    for _ in range(5):
        assert tclient.post("/api/v0/incidents", headers=user, json={
            "name": "x", "team_id": TEAM, "commander_user_id": ALICE}).status_code == 201
    wait_until(lambda: dataplane.hanging and len(dataplane.requests) == 0 and _pending(tcomponents) == 5)
    assert time.perf_counter() - started < 3.0
    started = time.perf_counter()
    tcomponents.telemetry.stop(0.5)
    assert time.perf_counter() - started < 1.5
    assert _pending(tcomponents) == 5


def test_switching_off_stops_traffic_at_once_and_deletes_unsent_events(tclient, tcomponents, dataplane):
    dataplane.stop()
    drive_every_mutation(tclient, tcomponents)
    assert _pending(tcomponents) == 11
    live = tcomponents.settings
    live.replace(live.current.replace(EnableTelemetry=False))
    assert _pending(tcomponents) == 0
    dataplane.start()
    drive_every_mutation(tclient, tcomponents)
    assert _pending(tcomponents) == 0
    report = tclient.get("/api/v0/telemetry", headers=as_user(ADMIN)).json
    assert report["enabled"] is False and report["reasons"] == ["EnableTelemetry is off"]
    assert report["deleted"] == 11
    tcomponents.telemetry.stop(2.0)
    assert dataplane.requests == []


def test_switching_back_on_sends_only_what_happens_afterwards(tclient, tcomponents, dataplane):
    live = tcomponents.settings
    live.replace(live.current.replace(EnableTelemetry=False))
    drive_every_mutation(tclient, tcomponents)
    live.replace(live.current.replace(EnableTelemetry=True))
    tclient.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE})
    wait_until(lambda: dataplane.delivered())
    tcomponents.telemetry.stop(2.0)
    assert [m["properties"]["Action"] for m in dataplane.delivered()] == ["create"]


def test_server_diagnostics_off_records_and_sends_nothing(tclient, tcomponents, dataplane):
    live = tcomponents.settings
    live.replace(live.current.replace(ServerDiagnosticsEnabled=False))
    drive_every_mutation(tclient, tcomponents)
    assert _pending(tcomponents) == 0
    assert tcomponents.telemetry.report()["reasons"] == ["the chat server's diagnostics are off"]
    tcomponents.telemetry.stop(2.0)
    assert dataplane.requests == []


def test_fresh_install_without_write_key_records_nothing_and_runs_no_dispatcher(client, components):
    drive_every_mutation(client, components)
    assert _pending(components) == 0
    assert not components.telemetry.dispatcher.running
    assert components.telemetry.report()["reasons"] == [
        "no RudderWriteKey is configured", "no RudderDataPlaneUrl is configured"]


def test_outbox_past_its_bound_drops_the_oldest_events_and_counts_them(telemetry_settings, dataplane):
    dataplane.stop()
    settings = telemetry_settings.replace(TelemetryOutboxMaxEvents=5)
    application = make_app(settings)
    components = application.extensions["incident"]
    try:
        client = application.test_client()
        drive_every_mutation(client, components)
        assert _pending(components) == 5
        assert components.telemetry.report()["dropped"] == 6
    finally:
        # Stopped before the data plane is back: a batch it read before the bound dropped
        # those events could otherwise still go out once the plane answers.
        assert components.telemetry.stop(5.0)
        components.db.dispose()
    dataplane.start()
    sender = make_app(settings).extensions["incident"]
    try:
        sender.telemetry.start()
        wait_until(lambda: len(dataplane.delivered()) == 5)
        assert [m["properties"]["Action"] for m in dataplane.delivered()] == [
            "set_assignee_for_task", "remove_task", "change_commander", "end", "restart"]
    finally:
        sender.telemetry.stop(2.0)
        sender.db.dispose()


def test_two_dispatchers_on_one_database_never_send_an_event_twice(telemetry_settings, dataplane):
    dataplane.stop()
    apps = [make_app(telemetry_settings, batch_size=3) for _ in range(2)]
    components = [a.extensions["incident"] for a in apps]
    try:
        for _ in range(4):
            drive_every_mutation(apps[0].test_client(), components[0])
        dataplane.start()
        wait_until(lambda: len(set(dataplane.delivered_ids())) == 44)
        wait_until(lambda: _pending(components[0]) == 0)
        assert len(dataplane.delivered_ids()) == 44
    finally:
        for c in components:
            c.telemetry.stop(2.0)
            c.db.dispose()


def test_telemetry_report_is_for_system_admins_only(tclient):
    response = tclient.get("/api/v0/telemetry", headers=as_user(ALICE))
    assert response.status_code == 403 and "system admins" in response.json["error"]


def test_telemetry_report_refuses_a_bad_limit_with_400(tclient):
    response = tclient.get("/api/v0/telemetry?limit=lots", headers=as_user(ADMIN))
    assert response.status_code == 400 and "limit" in response.json["error"]


def test_telemetry_report_shows_enabled_counts_and_no_error_after_a_delivery(tclient, tcomponents, dataplane):
    drive_every_mutation(tclient, tcomponents)
    wait_until(lambda: len(dataplane.delivered()) == 11)
    wait_until(lambda: tclient.get("/api/v0/telemetry", headers=as_user(ADMIN)).json["sent"] == 11)
    report = tclient.get("/api/v0/telemetry?limit=3", headers=as_user(ADMIN)).json
    assert report["enabled"] is True and report["reasons"] == []
    assert (report["pending"], report["dropped"], report["last_error"]) == (0, 0, None)
    assert [m["properties"]["Action"] for m in report["recent"]] == ["restart", "end", "change_commander"]


def test_local_host_diagnostic_id_is_generated_once_and_kept_in_the_database(tcomponents, telemetry_settings):
    first = tcomponents.host.server_facts().diagnostic_id
    other = make_app(telemetry_settings).extensions["incident"]
    try:
        assert len(first) == 26 and other.host.server_facts().diagnostic_id == first
    finally:
        other.telemetry.stop(1.0)
        other.db.dispose()


def _playbook() -> Playbook:
    """A playbook of two stages (2 and 3 tasks) and two members, with texts telemetry must not read."""
    stages = [Checklist(f"s{n}", "CANARY stage", [ChecklistItem(f"i{n}{i}", "CANARY task") for i in range(count)])
              for n, count in enumerate((2, 3))]
    return Playbook(id="p" * 26, title="CANARY playbook", team_id=TEAM, description="CANARY",
                    create_public_incident=True, checklists=stages, member_ids=[ALICE, BOB])


def record_playbook(components, action: str, *, commit: bool = True) -> None:
    """A playbook event through the unit of work, as the playbook use cases record it."""
    with components.db.unit_of_work(telemetry=components.telemetry) as uow:
        uow.add_event(PlaybookEvent(action, _playbook(), ALICE))
        if commit:
            uow.commit()


def test_a_playbook_event_records_ids_and_counts_only(tcomponents, dataplane):
    record_playbook(tcomponents, "create")
    [message] = wait_until(lambda: dataplane.delivered())
    properties = message["properties"]
    assert message["event"] == "playbook"
    assert set(properties) == {"Action", "PlaybookID", "TeamID", "NumChecklists", "TotalChecklistItems", "IsPublic",
                               "NumMembers", "UserActualID"} | COMMON
    assert (properties["PlaybookID"], properties["NumChecklists"], properties["TotalChecklistItems"],
            properties["IsPublic"], properties["NumMembers"]) == ("p" * 26, 2, 5, True, 2)
    assert b"CANARY" not in dataplane.all_bytes()


def test_an_event_recorded_in_a_rolled_back_transaction_is_never_sent(tcomponents, dataplane):
    record_playbook(tcomponents, "delete", commit=False)
    record_playbook(tcomponents, "update")
    wait_until(lambda: dataplane.delivered())
    tcomponents.telemetry.stop(2.0)
    assert [m["properties"]["Action"] for m in dataplane.delivered()] == ["update"]


def test_write_key_is_masked_wherever_settings_are_shown(tcomponents, dataplane):
    view = tcomponents.settings.current.public_view()
    assert view["RudderWriteKey"] == "********" and dataplane.write_key not in str(view)


def test_configuring_a_data_plane_at_run_time_starts_sending_without_a_restart(client, components, dataplane):
    live = components.settings
    try:
        live.replace(live.current.replace(RudderWriteKey=dataplane.write_key, RudderDataPlaneUrl=dataplane.url))
        assert components.telemetry.dispatcher.running
        client.post("/api/v0/incidents", headers=as_user(ALICE), json={
            "name": "x", "team_id": TEAM, "commander_user_id": ALICE})
        assert [m["event"] for m in wait_until(lambda: dataplane.delivered())] == ["incident"]
    finally:
        components.telemetry.stop(2.0)


def test_changing_the_data_plane_url_at_run_time_sends_to_the_new_one(tclient, tcomponents, dataplane):
    second = DataPlane()
    second.write_key = dataplane.write_key  # the same workspace behind another URL
    second.start()
    try:
        live = tcomponents.settings
        live.replace(live.current.replace(RudderDataPlaneUrl=second.url))
        tclient.post("/api/v0/incidents", headers=as_user(ALICE), json={
            "name": "x", "team_id": TEAM, "commander_user_id": ALICE})
        wait_until(lambda: second.delivered())
        tcomponents.telemetry.stop(2.0)
        assert dataplane.requests == [] and len(second.delivered()) == 1
    finally:
        second.stop()


def test_one_process_of_a_server_sends_and_another_takes_over_when_it_stops(telemetry_settings, dataplane):
    """Apps on one data directory and database take turns: one sends what all record."""
    first, second = make_app(telemetry_settings), make_app(telemetry_settings)
    one, two = first.extensions["incident"], second.extensions["incident"]
    try:
        drive_every_mutation(first.test_client(), one)
        wait_until(lambda: len(dataplane.delivered()) == 11)
        drive_every_mutation(second.test_client(), two)
        assert two.telemetry.dispatcher.running
        # The second records, the first (holding the turn) sends.
        wait_until(lambda: len(dataplane.delivered()) == 22 and _pending(two) == 0)
        assert not two.telemetry.dispatcher.turn.take()
        assert one.telemetry.stop(2.0)
        # The first let go of the turn when it stopped: the second now sends its own events.
        drive_every_mutation(second.test_client(), two)
        wait_until(lambda: len(dataplane.delivered()) == 33 and _pending(two) == 0)
        assert two.telemetry.dispatcher.turn.take()
        assert len(set(dataplane.delivered_ids())) == 33
    finally:
        for components in (one, two):
            components.telemetry.stop(2.0)
            components.db.dispose()


def test_racing_changes_of_one_incident_send_one_event_and_one_post_per_committed_change(tcomponents, dataplane,
                                                                                        caplog):
    # A change is first tried without a lock: a try that lost the race to another
    # change must leave neither its event nor its post behind.
    service = tcomponents.service
    incident = service.create_incident(ALICE, NewIncident("race", TEAM, ALICE, checklists=[
        NewChecklist(f"stage {n}") for n in range(4)]))
    for user in (BOB, CAROL):
        tcomponents.host.add_channel_member(incident.channel_id, user)

    def work(worker: int) -> None:
        rng = random.Random(worker)
        for _ in range(15):
            service.set_active_stage((ALICE, BOB, CAROL)[worker % 3], incident.id, rng.randrange(4))

    with caplog.at_level(logging.INFO, logger="plugin.service"), ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    changes = service.get_incident(ALICE, incident.id).version  # each committed change, once
    assert 0 < changes <= 8 * 15
    stage_events = lambda: [m for m in dataplane.delivered() if m["properties"]["Action"] == "change_stage"]  # noqa: E731
    wait_until(lambda: len(stage_events()) >= changes)
    tcomponents.telemetry.stop(2.0)
    assert len({m["messageId"] for m in stage_events()}) == len(stage_events()) == changes
    posts = [post for post in tcomponents.host.posts(incident.channel_id) if "changed the active stage" in post]
    assert len(posts) == changes
    retried = [r for r in caplog.records if "changed concurrently" in r.getMessage()]
    assert retried, "eight threads on one incident: some changes must have lost the race and been made again"
