"""Reconciliation verdicts: what REST says against what the stream told us.

During a scheduled reconciliation the engine hands each REST answer here before applying it.
A difference is only a candidate at first: the stream may simply be a few milliseconds behind
the REST read. Candidates the stream confirms within `grace` (an update at least as new as the
REST answer) are dropped; the rest, judged `grace` after the run finished, raise `StreamDrift`
naming each missing or differing order, quote or book. A run that could not finish raises
`ReconciliationFailed`: a skipped check must never look like a clean one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.exposure import plain_decimal
from riskmon.events import BookSnapshot, OrderUpdate, QuoteStatus, QuoteUpdate, ReconciliationFinished
from riskmon.watchdogs.context import WatchdogContext

KIND = "drift-verdict"
DRIFT = "StreamDrift"
FAILED = "ReconciliationFailed"
_LISTED = 10  # differences named in the alert; the count says how many in all

_QUOTE_STAGE = {
    QuoteStatus.ACCEPTED: 0,
    QuoteStatus.CONFIRMED: 1,
    QuoteStatus.EXECUTED: 2,
    QuoteStatus.EXPIRED: 3,
    QuoteStatus.REJECTED: 3,
    QuoteStatus.WITHDRAWN: 3,
}


@dataclass(slots=True)
class _Candidate:
    what: str
    sequence: int | None  # the REST answer's sequence: a stream update at least this new confirms it
    stage: int | None = None  # quotes: the REST stage a stream update must reach
    clearable: bool = True


class DriftCheck:
    def __init__(self, ctx: WatchdogContext, grace: float) -> None:
        self._ctx = ctx
        self._grace = grace
        self._candidates: dict[str, dict[str, _Candidate]] = {}
        self._drift_firing: set[str] = set()
        self._failed_firing: set[str] = set()
        self.runs: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.drifts: Counter[str] = Counter()  # differences confirmed

    def _note(self, venue: str, subject: str, candidate: _Candidate) -> None:
        self._candidates.setdefault(venue, {})[subject] = candidate

    def _confirm(self, venue: str, subject: str, sequence: int | None, stage: int | None = None) -> None:
        held = self._candidates.get(venue)
        candidate = held.get(subject) if held else None
        if candidate is None or not candidate.clearable:
            return
        if candidate.stage is not None and (stage is None or stage < candidate.stage):
            return
        if candidate.sequence is not None and (sequence is None or sequence < candidate.sequence):
            return
        del held[subject]  # type: ignore[union-attr]

    # REST answers ------------------------------------------------------------------------------

    def rest_order(self, before: OrderUpdate | None, update: OrderUpdate, applied: bool) -> None:
        subject = f"order {update.order_id}"
        filled = update.filled_quantity or Decimal(0)
        if before is None:
            self._note(
                update.venue,
                subject,
                _Candidate(f"{subject}: {update.venue_status} at the venue, never seen on the stream", update.sequence),
            )
            return
        held_filled = before.filled_quantity or Decimal(0)
        if before.status is update.status and held_filled == filled:
            return
        if not applied:
            if update.sequence is not None and update.sequence == before.sequence:
                # The same sequence saying something else: no later frame can explain that.
                what = (
                    f"{subject}: at sequence {update.sequence} the stream said {before.venue_status} "
                    f"(filled {plain_decimal(held_filled)}), REST says {update.venue_status} "
                    f"(filled {plain_decimal(filled)})"
                )
                self._note(update.venue, subject, _Candidate(what, update.sequence, clearable=False))
            return  # otherwise we already hold something newer
        what = (
            f"{subject}: the stream said {before.venue_status} (filled {plain_decimal(held_filled)}), "
            f"REST says {update.venue_status} (filled {plain_decimal(filled)})"
        )
        self._note(update.venue, subject, _Candidate(what, update.sequence))

    def rest_book(self, held: BookSnapshot | None, book: BookSnapshot) -> None:
        if held is None:
            return  # the stream sends a market's book only when it changes: REST seeds it
        if held.sequence is not None and book.sequence is not None:
            if book.sequence < held.sequence or (book.sequence == held.sequence and held.sides == book.sides):
                return
            clearable = book.sequence > held.sequence
            what = (
                f"book {book.market}: the stream is at sequence {held.sequence}, REST at {book.sequence}"
                if clearable
                else f"book {book.market}: levels differ at the same sequence {book.sequence}"
            )
            self._note(book.venue, f"book {book.market}", _Candidate(what, book.sequence, clearable=clearable))
        elif held.sides != book.sides:
            self._note(book.venue, f"book {book.market}", _Candidate(f"book {book.market}: levels differ", None))

    def rest_quote(self, before: QuoteStatus | None, update: QuoteUpdate) -> None:
        subject = f"quote {update.quote_id}"
        stage = _QUOTE_STAGE[update.status]
        if before is None:
            if update.status in (QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED):
                what = f"{subject}: {update.status.value} at the venue, never seen on the stream"
                self._note(update.venue, subject, _Candidate(what, None, stage))
            return
        if stage > _QUOTE_STAGE[before]:
            what = f"{subject}: the stream said {before.value}, REST says {update.status.value}"
            self._note(update.venue, subject, _Candidate(what, None, stage))

    # Stream updates that may confirm a candidate -----------------------------------------------

    def stream_order(self, update: OrderUpdate) -> None:
        self._confirm(update.venue, f"order {update.order_id}", update.sequence)

    def stream_book(self, book: BookSnapshot) -> None:
        self._confirm(book.venue, f"book {book.market}", book.sequence)

    def stream_quote(self, update: QuoteUpdate) -> None:
        self._confirm(update.venue, f"quote {update.quote_id}", None, _QUOTE_STAGE[update.status])

    # Verdicts ----------------------------------------------------------------------------------

    def on_finished(self, event: ReconciliationFinished, now: float) -> list[AlertTransition]:
        venue = event.venue
        self.runs[venue] += 1
        labels = {"venue": venue}
        if event.error is not None:
            self.failures[venue] += 1
            self._failed_firing.add(venue)
            annotations = {
                "summary": f"{venue}: reconciliation of {event.scope} failed",
                "description": f"riskmon could not compare its state with the venue's REST: {event.error}. "
                "Until a reconciliation succeeds, drift would go unnoticed.",
            }
            return self._ctx.raise_alert(FAILED, "warning", labels, annotations, now)
        for subject in event.unknown_at_venue:
            what = f"{subject}: held by riskmon, unknown to the venue"
            self._note(venue, subject, _Candidate(what, None, clearable=False))
        out: list[AlertTransition] = []
        if venue in self._failed_firing:
            self._failed_firing.discard(venue)
            resolution = f"reconciliation of {event.scope} succeeded again"
            out.extend(self._ctx.clear_alert(FAILED, "warning", labels, resolution, now))
        self._ctx.deadlines.schedule((KIND, venue), now + self._grace)
        return out

    def on_deadline(self, key: tuple[str, str], due: float) -> list[AlertTransition]:
        venue = key[1]
        found = self._candidates.pop(venue, {})
        labels = {"venue": venue}
        if not found:
            if venue not in self._drift_firing:
                return []
            self._drift_firing.discard(venue)
            return self._ctx.clear_alert(DRIFT, "warning", labels, "the stream and REST agree again", due)
        self.drifts[venue] += len(found)
        self._drift_firing.add(venue)
        items = [candidate.what for candidate in found.values()]
        listed = "; ".join(items[:_LISTED])
        more = f"; and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
        annotations = {
            "summary": f"{venue}: {len(items)} difference(s) between the stream and REST",
            "description": f"{listed}{more}. REST's state was applied; the stream missed or garbled these.",
        }
        return self._ctx.raise_alert(DRIFT, "warning", labels, annotations, due, float(len(items)))
