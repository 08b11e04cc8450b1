"""The webhook use cases, for system admins only.

Decisions:
- A webhook's URL is checked when it is saved (its form, and every address its host
  resolves to, see ``plugin.webhooks.rules``) and again before every delivery. The
  save's host lookup runs in a small pool of its own and gets SAVE_LOOKUP_SECONDS: a
  DNS server that never answers refuses the save (400) instead of holding the request.
- The secret is generated when not given and returned once, by the create; no read
  shows it again. Changing it (PATCH with ``secret``) signs the deliveries still
  waiting with the new one.
- Creating and deleting a webhook record the ``webhook`` telemetry event (its id and
  counts, never its URL or secret) in the same transaction.
- Redelivery makes a delivered or failed delivery pending again with a fresh retry
  window; one still pending is retried on its own (409).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from plugin.chat import ChatHost
from plugin.errors import BadInput, NotFound, PermissionDenied
from plugin.events import Event, WebhookEvent
from plugin.model import new_id, now_ms
from plugin.settings import Settings
from plugin.webhooks.rules import (ALL_EVENTS, Delivery, Lookups, Refused, Webhook, check_events, check_secret,
                                   new_secret, parse_url, resolve_checked)

# Glibc's default wait for one DNS server (resolv.conf "timeout:5"): a healthy name answers well
# within it, and an admin's save, with the request thread it holds, waits no longer for a dead one.
SAVE_LOOKUP_SECONDS = 5.0
# Threads for the saves' lookups in each process: as many as a worker's request threads by default,
# so saves at once never queue behind one another while the DNS answers.
SAVE_LOOKUP_THREADS = 4


@dataclass(frozen=True)
class WebhookChanges:
    """A change to a webhook: None keeps a field as it is."""

    url: str | None = None
    events: list[str] | None = None
    team_id: str | None = None
    secret: str | None = None


class WebhookRepository(Protocol):
    """Webhooks: read at once, written at commit."""

    def get(self, webhook_id: str) -> Webhook | None: ...
    def list(self, page: int, per_page: int) -> tuple[int, list[Webhook]]: ...
    def add(self, hook: Webhook) -> None: ...
    def save(self, hook: Webhook) -> None: ...
    def delete(self, webhook_id: str) -> None: ...


class DeliveryRepository(Protocol):
    """A webhook's deliveries as admins see them; a redelivery is written at commit."""

    def list(self, webhook_id: str, page: int, per_page: int) -> tuple[int, list[Delivery]]: ...
    def get(self, webhook_id: str, delivery_id: str) -> Delivery | None: ...
    def redeliver(self, delivery: Delivery, now: int) -> None: ...


class WebhookUnitOfWork(AbstractContextManager, Protocol):
    """What these use cases need of a unit of work."""

    webhooks: WebhookRepository
    deliveries: DeliveryRepository

    def add_event(self, event: Event) -> None: ...
    def commit(self) -> object: ...


class WebhookService:
    """Webhook use cases over the units of work, the chat host (who is an admin) and the settings in force."""

    def __init__(self, uow_factory: Callable[..., WebhookUnitOfWork], host: ChatHost, settings: Callable[[], Settings], *,
                 lookups: Lookups, lookup_seconds: float = SAVE_LOOKUP_SECONDS, clock: Callable[[], int] = now_ms,
                 wake: Callable[[], None] = lambda: None):
        self.uow_factory = uow_factory
        self.host = host
        self.settings = settings
        self.lookups = lookups
        self.lookup_seconds = lookup_seconds
        self.clock = clock
        self.wake = wake

    def _require_admin(self, user_id: str) -> None:
        if not self.host.is_system_admin(user_id):
            raise PermissionDenied("Only system admins may manage webhooks.")

    def _checked_url(self, url: str) -> str:
        settings = self.settings()
        try:
            resolve_checked(parse_url(url, settings.webhook_http_hosts),
                            bool(settings["WebhookAllowPrivateAddresses"]),
                            lambda host, port: self.lookups.within(host, port, self.lookup_seconds))
        except Refused as exc:
            raise BadInput(str(exc), {"field": "url"}) from None
        return url

    @staticmethod
    def _checked(check: Callable[[Any], Any], value: Any, name: str) -> Any:
        try:
            return check(value)
        except Refused as exc:
            raise BadInput(str(exc), {"field": name}) from None

    def create(self, user_id: str, url: str, events: list[str], secret: str | None = None,
               team_id: str = "") -> Webhook:
        """Register a webhook; the one returned carries its secret (generated when not given), shown this once."""
        self._require_admin(user_id)
        now = self.clock()
        hook = Webhook(id=new_id(), url=self._checked_url(url), events=self._checked(check_events, events, "events"),
                       secret=new_secret() if secret is None else self._checked(check_secret, secret, "secret"),
                       team_id=team_id, creator_user_id=user_id, create_at=now, update_at=now)
        with self.uow_factory() as uow:
            uow.webhooks.add(hook)
            uow.add_event(WebhookEvent("create", user_id, {
                "WebhookID": hook.id, "NumEventTypes": len(hook.events), "AllEventTypes": ALL_EVENTS in hook.events,
                "OneTeam": bool(hook.team_id), "UserActualID": user_id}))
            uow.commit()
        self.wake()
        return hook

    def list(self, user_id: str, page: int, per_page: int) -> tuple[int, list[Webhook]]:
        """A page of the webhooks, oldest first."""
        self._require_admin(user_id)
        with self.uow_factory(write=False) as uow:
            return uow.webhooks.list(page, per_page)

    def get(self, user_id: str, webhook_id: str) -> Webhook:
        """One webhook (NotFound when there is none such)."""
        self._require_admin(user_id)
        with self.uow_factory(write=False) as uow:
            return self._existing(uow, webhook_id)

    @staticmethod
    def _existing(uow: WebhookUnitOfWork, webhook_id: str) -> Webhook:
        hook = uow.webhooks.get(webhook_id)
        if hook is None:
            raise NotFound(f"Webhook {webhook_id} does not exist.", {"webhook_id": webhook_id})
        return hook

    def update(self, user_id: str, webhook_id: str, changes: WebhookChanges) -> Webhook:
        """Change a webhook's URL, events, team or secret."""
        self._require_admin(user_id)
        url = None if changes.url is None else self._checked_url(changes.url)
        events = None if changes.events is None else self._checked(check_events, changes.events, "events")
        secret = None if changes.secret is None else self._checked(check_secret, changes.secret, "secret")
        with self.uow_factory() as uow:
            hook = self._existing(uow, webhook_id)
            hook.url = hook.url if url is None else url
            hook.events = hook.events if events is None else events
            hook.team_id = hook.team_id if changes.team_id is None else changes.team_id
            hook.secret = hook.secret if secret is None else secret
            hook.update_at = self.clock()
            uow.webhooks.save(hook)
            uow.commit()
        return hook

    def delete(self, user_id: str, webhook_id: str) -> None:
        """Delete a webhook with its deliveries, sent or not."""
        self._require_admin(user_id)
        with self.uow_factory() as uow:
            hook = self._existing(uow, webhook_id)
            uow.webhooks.delete(hook.id)
            uow.add_event(WebhookEvent("delete", user_id, {"WebhookID": hook.id, "UserActualID": user_id}))
            uow.commit()

    def deliveries(self, user_id: str, webhook_id: str, page: int, per_page: int) -> tuple[int, list[Delivery]]:
        """A page of the webhook's deliveries, newest first, each with its attempts."""
        self._require_admin(user_id)
        with self.uow_factory(write=False) as uow:
            self._existing(uow, webhook_id)
            return uow.deliveries.list(webhook_id, page, per_page)

    def redeliver(self, user_id: str, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivered or failed delivery again (same id, same body, a fresh retry window)."""
        self._require_admin(user_id)
        with self.uow_factory() as uow:
            self._existing(uow, webhook_id)
            delivery = uow.deliveries.get(webhook_id, delivery_id)
            if delivery is None:
                raise NotFound(f"Webhook {webhook_id} has no delivery {delivery_id}.", {"delivery_id": delivery_id})
            now = self.clock()
            uow.deliveries.redeliver(delivery, now)
            uow.commit()
        self.wake()
        delivery.status, delivery.next_at, delivery.finished_at = "pending", now, 0
        return delivery


def deliveries_counted(counts: dict[str, int]) -> WebhookEvent:
    """The daily telemetry event of a day's deliveries: counts only."""
    return WebhookEvent("deliveries", "", {"NumDelivered": counts["delivered"], "NumFailed": counts["failed"],
                                           "NumWebhooks": counts["webhooks"]})
