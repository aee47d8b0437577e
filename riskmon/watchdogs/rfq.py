"""The RFQ confirmation deadline watchdog (Totalis, protocols.md §4.3).

An accepted quote must be confirmed by its `confirmation_deadline`, or the venue unwinds the
trade. Missing it raises `RfqConfirmationMissed` (critical) and asks for a REST reconciliation;
the quote's pending exposure stays reserved until the venue says expired or withdrawn (stream or
REST), and the alert resolves then. An optional `lead` raises `RfqConfirmationDue` (warning)
that long before the deadline. Quote-to-confirm latency is recorded.

After a restart the deadlines come back from the journal and whether each alert is firing from
the restored alert states (`adopt`), so a warning raised before the restart still resolves when
the quote confirms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from riskmon.alerts.lifecycle import ActiveAlert, AlertTransition
from riskmon.engine.actions import ReconcileVenue
from riskmon.engine.trading import QUOTE_RELEASED, Quote
from riskmon.events import QuoteStatus
from riskmon.watchdogs.context import WatchdogContext, at
from riskmon.watchdogs.journal import PersistedDeadline
from riskmon.watchdogs.latency import LatencyHistogram

KIND = "rfq-confirmation"
LEAD = "rfq-lead"
MISSED = "RfqConfirmationMissed"
DUE = "RfqConfirmationDue"


@dataclass(slots=True)
class _Watched:
    venue: str
    quote_id: str
    desk: str
    rfq_id: str | None
    deadline: float
    accepted_at: float | None
    missed_while_down: bool = False
    missed: bool = False  # RfqConfirmationMissed is firing
    due_warned: bool = False  # RfqConfirmationDue is firing


class RfqConfirmationWatchdog:
    def __init__(self, ctx: WatchdogContext, leads: Mapping[str, float | None]) -> None:
        self._ctx = ctx
        self._leads = dict(leads)
        self._quotes: dict[tuple[str, str], _Watched] = {}
        self.confirm_latency: dict[str, LatencyHistogram] = {venue: LatencyHistogram() for venue in leads}
        self.missed: dict[str, int] = dict.fromkeys(leads, 0)

    def pending(self, venue: str) -> int:
        """Accepted quotes awaiting confirmation (or their venue's word after a missed deadline)."""
        return sum(1 for venue_, _ in self._quotes if venue_ == venue)

    def on_quote(self, quote: Quote, moved: bool, now: float, *, closed_by: str | None = None) -> list[AlertTransition]:
        """Follow a quote's latest state; `closed_by` names the RFQ position event that closed it,
        for the resolved alert's `resolution`."""
        key = (quote.venue, quote.quote_id)
        watched = self._quotes.get(key)
        if quote.status is QuoteStatus.ACCEPTED and not quote.closed:
            if watched is None and quote.confirmation_deadline is not None:
                watched = _Watched(
                    quote.venue,
                    quote.quote_id,
                    quote.desk,
                    quote.rfq_id,
                    quote.confirmation_deadline,
                    quote.accepted_at,
                )
                self._arm(watched, now)
            elif watched is not None and watched.rfq_id is None and not (watched.missed or watched.due_warned):
                watched.rfq_id = quote.rfq_id  # never once an alert carries the labels
            return []
        if watched is None:
            return []
        # Confirmed, executed, released or closed: the deadline no longer applies.
        self._disarm(watched)
        if quote.status in (QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED) and watched.accepted_at is not None:
            self.confirm_latency.setdefault(quote.venue, LatencyHistogram()).observe(now - watched.accepted_at)
        return self._settle(watched, quote, now, closed_by)

    def _arm(self, watched: _Watched, now: float) -> None:
        venue, quote_id = watched.venue, watched.quote_id
        self._quotes[(venue, quote_id)] = watched
        # A quote learned after its deadline (REST after a reconnect) is checked at once.
        self._ctx.deadlines.schedule((KIND, venue, quote_id), max(watched.deadline, now))
        lead = self._leads.get(venue)
        if lead and watched.deadline - lead > now:
            self._ctx.deadlines.schedule((LEAD, venue, quote_id), watched.deadline - lead)
        data = {"desk": watched.desk}
        if watched.rfq_id is not None:
            data["rfq_id"] = watched.rfq_id
        if watched.accepted_at is not None:
            data["accepted_at"] = repr(watched.accepted_at)
        self._ctx.journal.put(PersistedDeadline(KIND, venue, quote_id, watched.deadline, data))

    def restore(self, record: PersistedDeadline, now: float) -> None:
        if record.kind != KIND or record.venue not in self._leads or (record.venue, record.subject) in self._quotes:
            return  # another watchdog's, a venue no longer configured, or already re-announced
        try:
            accepted_at: float | None = float(record.data["accepted_at"])
        except (KeyError, ValueError):
            accepted_at = None  # only the confirm latency is lost
        watched = _Watched(
            record.venue,
            record.subject,
            record.data.get("desk", "unassigned"),
            record.data.get("rfq_id"),
            record.due,
            accepted_at,
            missed_while_down=record.due <= now,
        )
        self._arm(watched, now)

    def adopt(self, alerts: Iterable[ActiveAlert]) -> None:
        """After `restore`: take each restored quote's firing RfqConfirmationDue / Missed alert as its
        own, as the flags that were not persisted would have said, so the quote's confirmation or
        release resolves it. The alert's labels win (they may name an RFQ the journal record does
        not), so the resolution hits the alert's fingerprint."""
        for alert in alerts:
            if alert.alertname not in (DUE, MISSED) or alert.state != "firing":
                continue
            watched = self._quotes.get((alert.labels.get("venue", ""), alert.labels.get("quote_id", "")))
            if watched is None:
                continue
            watched.desk = alert.labels.get("desk", watched.desk)
            watched.rfq_id = alert.labels.get("rfq_id", watched.rfq_id)
            if alert.alertname == DUE:
                watched.due_warned = True
                self._ctx.deadlines.cancel((LEAD, watched.venue, watched.quote_id))  # already warned
            else:
                # Missed before the restart and already counted and reconciled: not missed again.
                watched.missed = True
                self._ctx.deadlines.cancel((KIND, watched.venue, watched.quote_id))
                self._ctx.deadlines.cancel((LEAD, watched.venue, watched.quote_id))

    def _disarm(self, watched: _Watched) -> None:
        del self._quotes[(watched.venue, watched.quote_id)]
        self._ctx.deadlines.cancel((KIND, watched.venue, watched.quote_id))
        self._ctx.deadlines.cancel((LEAD, watched.venue, watched.quote_id))
        self._ctx.journal.drop(KIND, watched.venue, watched.quote_id)

    def _settle(self, watched: _Watched, quote: Quote, now: float, closed_by: str | None) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        labels = self._labels(watched)
        if watched.due_warned:
            resolution = f"the venue reports it {quote.status.value}"
            out.extend(self._ctx.clear_alert(DUE, "warning", labels, resolution, now))
        if watched.missed:
            # What the risk officer must tell apart: confirmed late (the exposure is real) or released.
            if closed_by is not None:
                resolution = f"the RFQ position was {closed_by}; its exposure is released"
            elif quote.status in QUOTE_RELEASED:
                resolution = f"the venue released it ({quote.status.value}); its pending exposure is released"
            else:
                resolution = f"the venue reports it {quote.status.value} after the deadline"
            out.extend(self._ctx.clear_alert(MISSED, "critical", labels, resolution, now))
        return out

    def on_deadline(self, key: tuple[str, str, str], due: float) -> list[AlertTransition]:
        kind, venue, quote_id = key
        watched = self._quotes.get((venue, quote_id))
        if watched is None:
            return []
        labels = self._labels(watched)
        if kind == LEAD:
            watched.due_warned = True
            annotations = {
                "summary": f"{venue} quote {quote_id}: confirmation due at {at(watched.deadline)}",
                "description": f"Accepted quote {quote_id} of desk {watched.desk} is still unconfirmed "
                f"{watched.deadline - due:g}s before its deadline.",
            }
            return self._ctx.raise_alert(DUE, "warning", labels, annotations, due)
        out: list[AlertTransition] = []
        if watched.due_warned:
            watched.due_warned = False
            out.extend(self._ctx.clear_alert(DUE, "warning", labels, "superseded: deadline missed", due))
        watched.missed = True
        self.missed[venue] = self.missed.get(venue, 0) + 1
        self._ctx.actions.append(ReconcileVenue(venue, f"quote {quote_id} missed its confirmation deadline"))
        rfq = f" (RFQ {watched.rfq_id})" if watched.rfq_id else ""
        description = (
            f"Accepted quote {quote_id}{rfq} of desk {watched.desk} was not confirmed by "
            f"{at(watched.deadline)}. The venue unwinds it; its exposure stays reserved until the venue "
            "says expired or withdrawn."
        )
        annotations = {"summary": f"{venue} quote {quote_id}: confirmation deadline missed", "description": description}
        if watched.missed_while_down:
            annotations["missed_while_down"] = "true"
            annotations["description"] += " The deadline passed while riskmon was down."
        out.extend(self._ctx.raise_alert(MISSED, "critical", labels, annotations, due))
        return out

    @staticmethod
    def _labels(watched: _Watched) -> dict[str, str]:
        labels = {"desk": watched.desk, "venue": watched.venue, "quote_id": watched.quote_id}
        if watched.rfq_id is not None:
            labels["rfq_id"] = watched.rfq_id
        return labels
