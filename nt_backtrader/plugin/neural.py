"""NeuralStrategy: the timing network decides, the NeuralSizer sizes, the risk network brackets.

It trades every data feed of the cerebro, each on its own bars: per feed, entries and exits
follow the bundle's timing rule (thresholds with hysteresis) on that feed's NeuralSignal; an
entry goes out as a native bracket; after a stop or take-profit the strategy waits `cooldown`
bars before it enters that side of that feed again, so a stop is not undone on the next bar.
One account, one portfolio state: the sizer reads it to size each order.

Every decision is kept (`decisions`, a Decision per feed and bar: what was done and why); with
`journal` they are also appended to a CSV as they are taken, with the orders and fills, and a
restart goes on from the journal's last bar as if it had never stopped (on backtrader's simulated
broker its account too: see journal.py). With a live feed (backtrader's live protocol) the
bars it sends before it reports LIVE are history: the indicators run on them, nothing is decided.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import backtrader as bt

from ..bundle import bundle_for
from ..decisions import AccountRecord, aged, levels_from, next_position, waited
from ..errors import ConfigError
from .base import SegmentStrategy
from .brackets import RiskBrackets
from .feeds import asset_name
from .journal import Decision, DecisionJournal, decision_table
from .signal import NeuralSignal
from .sizer import NeuralSizer


@dataclass
class FeedState:
    """The timing rule's state for one feed."""

    wanted: int = 0           # the rule's position after the feed's last bar
    age: int = 0              # bars the rule has wanted it
    blocked: int = 0          # a side a bracket just closed: no re-entry there for a while
    blocked_bars: int = 0     # bars left in that wait
    order: object = None      # our pending entry or exit
    decided_at: float = 0.0   # backtrader's time of the last bar decided (live feeds may call next() twice a bar)
    skipped: int = 0          # history bars after the journal's last decision, never decided (a restart)


class NeuralStrategy(RiskBrackets, SegmentStrategy):
    params = (
        ("bundle", None),   # a Bundle, the path of one written by `nt-backtrader train`, or {feed name: either}
        ("sizer", True),    # install a NeuralSizer (a sizer given to cerebro.addsizer wins)
        ("journal", None),  # path of a CSV decision journal, appended bar by bar; an existing one is continued
    )

    def __init__(self):
        if self.p.risk_bundle is not None:  # the brackets' older name: here it would silently be ignored
            raise ConfigError("NeuralStrategy takes its bundle as bundle=...; risk_bundle= is an older name of the "
                              "risk brackets' parameter")
        self.bundles = {data: bundle_for(self.p.bundle, asset_name(data)) for data in self.datas}
        allow = self.p.allow_timeframe
        self.signals = {data: NeuralSignal(data, bundle=self.bundles[data], allow_timeframe=allow)
                        for data in self.datas}
        if self.p.sizer:
            self.setsizer(NeuralSizer(bundle=self.p.bundle, cash_buffer=self.p.cash_buffer, allow_timeframe=allow))
        self.account = AccountRecord()  # read by the sizer: drawdown, recent PnL
        self.feeds = {data: FeedState() for data in self.datas}
        self.signal_exits = 0
        self.decisions: list[Decision] = []
        self.journal = DecisionJournal(self.p.journal) if self.p.journal else None
        self.digests = bundle_digests(self.bundles) if self.journal is not None else {}
        self.journaled = {}  # asset -> the date of its last decision in the journal: bars up to it are done
        self._resume = {}    # data -> what the journal's simulated account had out on it, re-sent in new_bar
        self._dropped = []   # (data, journaled order, written after this time): out there, not sent again
        self._account_at = float("-inf")  # backtrader's time of the account's last update
        self._went_live = set()           # feeds that have had their first live bar

    def risk_bundle(self, data):
        return self.bundles[data]

    def bracket_levels(self, data, direction):
        suffix = "" if direction > 0 else "_short"
        now = self.signals[data].current
        return levels_from(data.close[0], now("atr"), now("stop_atr" + suffix), now("take_atr" + suffix), direction)

    def next(self):
        if self.warming_up():
            self.maybe_resume()
            return
        ready = [data for data in self.datas if self.new_bar(data)]
        if not ready:
            return
        value, today = self.broker.getvalue(), self.datetime.date(0)  # the same for every feed decided now
        if self.datetime[0] > self._account_at:
            self._account_at = self.datetime[0]
            self.account.update(value)
        for data in ready:
            self.warn_on_first_live_bar(data)
            self.decide(data, value, today)
            if self.journal is not None:
                self.journal.flush()  # on disk before the next feed's orders go out

    def new_bar(self, data) -> bool:
        """The feed has a bar to decide now: one it has not seen (live feeds whose bars arrive at different
        polls make backtrader call next() again at the same time, the earlier feeds' bars unchanged), that
        is not history (a live feed's backfill), and that a run before a restart did not decide."""
        state = self.feeds[data]
        if not self.has_bar(data) or data.datetime[0] <= state.decided_at:
            return False
        state.decided_at = data.datetime[0]
        held = self._resume.get(data)
        if held is not None:
            self.resume_from_journal(data, held)
        last = self.journaled.get(asset_name(data))
        if last is not None and data.datetime.date(0) <= last:
            self._account_at = max(self._account_at, data.datetime[0])  # the journal's account record has it
            return False  # in the journal already
        if self.backfill(data):
            state.skipped += last is not None  # history after the journal: the process was down on these bars
            return False
        return True

    def warn_on_first_live_bar(self, data) -> None:
        """Once per feed, on its first bar decided live: what the rule could not see."""
        state = self.feeds[data]
        if not data.islive() or data in self._went_live:
            return
        self._went_live.add(data)
        name = asset_name(data)
        if len(data) < self.bundles[data].warmup_bars:
            warnings.warn(f"{name} went live after {len(data)} bars, fewer than the bundle's warm-up of "
                          f"{self.bundles[data].warmup_bars}: it decides flat until then; backfill more history",
                          stacklevel=2)
        if state.skipped:
            warnings.warn(f"{name}: {state.skipped} bars after the journal's last decision "
                          f"({self.journaled[name]}) came as history and were not decided", stacklevel=2)

    def decide(self, data, value: float, today) -> None:
        state, signal = self.feeds[data], self.signals[data]
        wanted = next_position(state.wanted, state.age, signal.p_long[0], signal.p_short[0], self.bundles[data].spec)
        state.wanted, state.age = wanted, aged(state.wanted, state.age, wanted)
        state.blocked, state.blocked_bars = waited(state.blocked, state.blocked_bars, state.wanted)
        action = self.act(data, state)
        self.record(data, state, action, value, today)

    def act(self, data, state: FeedState) -> str:
        """Send what the rule's side asks for on this feed; returns what was done."""
        if state.order is not None:
            return "pending"
        size = self.getposition(data).size
        held = int(size > 0) - int(size < 0)
        if held and held != state.wanted:
            state.order = self.close(data=data)
            return "exit"
        if held:
            return "hold"
        if not state.wanted:
            return "flat"
        if state.wanted == state.blocked:
            return "wait"
        state.order = self.buy(data=data) if state.wanted > 0 else self.sell(data=data)
        return "enter" if state.order is not None else "flat"  # None: the sizer said 0

    def record(self, data, state: FeedState, action: str, value: float, today) -> None:
        """The decision as a Decision: the side and exposure expected after the next open, its levels."""
        close = data.close[0]
        size, levels = self.getposition(data).size, None
        if action in ("enter", "pending") and state.order is not None and not size:
            size = state.order.created.size  # an entry on its way
            book = self._bracket_book().get(data)
            levels = book["levels"] if book else None
        elif action in ("exit", "pending") and size:
            size = 0.0  # an exit on its way
        if size and levels is None:
            levels = self.live_levels(data)
        side = int(size > 0) - int(size < 0)
        stop, take = levels if levels else (float("nan"), float("nan"))
        signal = self.signals[data]
        decision = Decision(today, asset_name(data), action, side,
                            abs(size) * close / value if value > 0 else 0.0, float(stop), float(take), state.wanted,
                            state.age, state.blocked, state.blocked_bars, float(signal.p_long[0]),
                            float(signal.p_short[0]), float(signal.current("confidence")), float(close), value)
        self.decisions.append(decision)
        if self.journal is not None:
            self.journal_dropped()
            self.journal.add_decision(decision, self.digests[data])

    def decision_table(self):
        """Every decision of the run as a DataFrame, one row per feed and bar decided."""
        return decision_table(self.decisions)

    def on_bracket_exit(self, data, kind, direction):
        self.feeds[data].blocked, self.feeds[data].blocked_bars = direction, self.bundles[data].spec.cooldown

    def notify_order(self, order):
        super().notify_order(order)
        if self.journal is not None and order.status != order.Created:
            self.journal_order(order)
        state = self.feeds.get(order.data)
        if state is not None and self.same_order(order, state.order) and not order.alive():
            if order.status == order.Completed and not self.getposition(order.data).size:
                self.signal_exits += 1
            state.order = None

    def journal_order(self, order) -> None:
        """A notification as a row, the order named by the journal's number of it (see journal.py): an order
        a restart sent again keeps the number the journal gave it, and the notifications the journal has of
        it already (its Submitted and Accepted) are not written twice; its Completed, Canceled, ... are."""
        self.journal_dropped()
        number, status = self.journal.order_number(order.ref), order.getstatusname()
        if self.journal.has(number, status):
            return
        done = order.status == order.Completed
        price = order.executed.price if done else order.created.price
        self.journal.add_event("fill" if done else "order", self.datetime.date(0), asset_name(order.data),
                               order=number, status=status, type=order.getordername(),
                               size=order.executed.size if done else order.created.size,
                               price=price if price is not None else float("nan"),
                               commission=order.executed.comm if done else float("nan"))

    def journal_dropped(self) -> None:
        """The journal's orders still out that a restart did not send again (the other leg of a bracket that
        filled on the bar whose decision was cut off, the legs cancelled by our exit still out) are no longer
        out: Canceled, with the notifications or decision journaled next (after the bar of the decision that
        cancelled them), where the run that wrote the journal had the broker's cancellation."""
        now, later = self.datetime[0], []
        for data, out, after in self._dropped:
            if now <= after:
                later.append((data, out, after))
                continue
            self.journal.add_event("order", self.datetime.date(0), asset_name(data), order=out["order"],
                                   status="Canceled", type=out["type"], size=out["size"], price=out["price"],
                                   commission=float("nan"))
        self._dropped = later

    def notify_data(self, data, status, *args, **kwargs):
        """A live feed's state (DELAYED while it sends history, LIVE, DISCONNECTED, ...) goes to the
        journal; which bars are traded is read from the feed's state at each bar (see ready())."""
        if self.journal is not None:
            self.journal.add_event("status", data.datetime.date(0) if len(data) else None, asset_name(data),
                                   status=data._getstatusname(status))

    def stop(self):
        if self.journal is not None and self.decisions:  # a run without a new bar leaves the journal as it was
            self.journal.flush()  # the orders notified after the last bar

    # --- walk-forward carry, restarts -----------------------------------------------------------
    def start(self):
        super().start()
        if self.journal is not None:
            self.restart_from_journal()
        carry = self.p.carry
        if carry:
            self.account = AccountRecord(carry["account"]["peak"], list(carry["account"]["recent"]))
            for data, state in self.feeds.items():
                held = self.carried(data)
                if held:
                    state.wanted, state.blocked = held["wanted"], held["blocked"]
                    state.blocked_bars = held["blocked_bars"]
                    state.age = held["age"]

    def restart_from_journal(self) -> None:
        states, account = self.journal.restart()
        if account is None:
            return  # a new journal
        self.account = account  # the drawdown and recent PnL the sizer reads go on too
        for data, state in self.feeds.items():
            last = states.get(asset_name(data))
            if last:  # the rule goes on from its last journaled decision
                self.journaled[asset_name(data)] = last["date"]
                state.wanted, state.age = last["wanted"], last["age"]
                state.blocked, state.blocked_bars = last["blocked"], last["blocked_bars"]
                for kind, direction in last["bracket_exits"]:  # filled on a bar whose decision was cut off
                    self.on_bracket_exit(data, kind, direction)
        self.warn_on_another_bundle(states)
        if isinstance(self.broker, bt.brokers.BackBroker):  # a real broker keeps its own account
            self.restore_simulated_account()

    def warn_on_another_bundle(self, states: dict) -> None:
        """Once per pair of bundles: the journal's decisions were made by another one than this run's."""
        pairs = {(states[asset_name(data)]["bundle"], digest) for data, digest in self.digests.items()
                 if asset_name(data) in states and states[asset_name(data)]["bundle"] != digest}
        for journaled, mine in sorted(pairs):
            warnings.warn(f"{self.journal.path}: its decisions were made by bundle {journaled[:12]}, this run's is "
                          f"{mine[:12]}; the rule goes on from their state with this run's bundle", stacklevel=2)

    def restore_simulated_account(self) -> None:
        """The dry run's account as the journal left it, as a real broker would have kept it: the cash, each
        position and its brackets, our orders still out (re-sent on the bar they were out)."""
        cash, book = self.journal.book()
        self.broker.set_cash(cash)
        self._resume = {data: book[asset_name(data)] for data in self.datas if asset_name(data) in book}

    def resume_from_journal(self, data, held: dict) -> None:
        """The journal's position goes into the simulated broker on the feed's first bar (the broker values
        positions at their feed's close: it needs one), its orders still out on the bar they were out."""
        if not held.get("placed"):
            held["placed"] = True
            position = bt.Position(held["size"], held["price"])
            position.datetime = data.datetime.datetime(0)  # read by short-interest code
            self.broker.positions[data] = position
        if data.datetime.date(0) >= held["resume_on"]:
            del self._resume[data]
            self.resume(data, held)

    def carry_out(self) -> dict:
        return super().carry_out() | {"account": self.account.to_dict()}

    def asset_carry(self, data) -> dict:
        state = self.feeds[data]
        order = state.order if state.order is not None and state.order.alive() else None
        entry = exit_ = None
        if order is not None and not self.getposition(data).size:
            book = self._bracket_book().get(data)
            entry = {"size": order.created.size, "levels": list(book["levels"]) if book else None}
        elif order is not None:
            exit_ = True
        levels = self.live_levels(data)
        return super().asset_carry(data) | {"wanted": state.wanted, "age": state.age, "blocked": state.blocked,
                                            "blocked_bars": state.blocked_bars, "entry": entry, "exit": exit_,
                                            "levels": list(levels) if levels else None}

    def resume(self, data, held: dict) -> None:
        """Re-send what was out: the legs guarding the position (not when our exit is out: it cancelled
        them), our entry (as its bracket) or exit. On a restart (`held` from DecisionJournal.book) each order
        sent is the journal's order of its type still out going on (see continue_journaled)."""
        if not held:
            return
        state = self.feeds[data]
        sent = []
        if held["levels"] and held["size"] and not held["exit"]:
            self.guard(data, held["size"], held["levels"])
            sent += [self._bracket_book()[data]["stop"], self._bracket_book()[data]["take"]]
        if held["exit"]:
            state.order = self.close(data=data)
            sent.append(state.order)
        elif held["entry"]:
            size = held["entry"]["size"]
            levels = tuple(held["entry"]["levels"]) if held["entry"]["levels"] else None
            state.order = self._route(size > 0, data, abs(size), {}, levels=levels)
            book = self._bracket_book().get(data)
            sent += [state.order, *((book["stop"], book["take"]) if book and book["parent"] is state.order else ())]
        if self.journal is not None:
            self.continue_journaled(data, sent, held.get("orders", []))  # none in a walk-forward carry

    def continue_journaled(self, data, sent: list, journaled: list[dict]) -> None:
        """Each order `sent` again is the journal's last order of its type still out on `data` (it keeps its
        number, see journal.py); the journal's orders still out that none continues are written Canceled: after
        this bar when the journal has its decision (it cancelled them), else on it (the broker did)."""
        left = list(journaled)
        for order in sent:
            same = [out for out in left if order is not None and out["type"] == order.getordername()]
            if same:
                left.remove(same[-1])
                self.journal.adopt(order.ref, same[-1]["order"], same[-1]["statuses"])
        decided = self.journaled.get(asset_name(data))
        after = data.datetime[0] if decided is not None and data.datetime.date(0) <= decided else float("-inf")
        self._dropped += [(data, out, after) for out in left]

    def diagnostics(self) -> dict:
        self._bracket_book()  # makes the exit counters exist even when no bracket was sent
        sizer = self.getsizer()
        return {"bracket_exits": dict(self.bracket_exits), "signal_exits": self.signal_exits,
                "sizing": list(getattr(sizer, "log", []))}


def bundle_digests(bundles: dict) -> dict:
    """data -> the SHA-256 of its bundle (computed once per bundle)."""
    digests = {}
    for bundle in bundles.values():
        if id(bundle) not in digests:
            digests[id(bundle)] = bundle.to_payload()["sha256"]
    return {data: digests[id(bundle)] for data, bundle in bundles.items()}
