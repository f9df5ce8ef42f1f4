"""NeuralStrategy on a live feed, every decision, order and fill appended to a journal.

    nt-backtrader train --config strategies/discrete.toml --out model.pt
    python strategies/neural_live.py --bundle model.pt --replay SPY.csv --live-from 2018-06-01  # a dry run
    python strategies/neural_live.py --bundle model.pt --ib SPY-STK-SMART-USD --port 7497      # untested here

--replay sends a CSV's bars one at a time through backtrader's live protocol (history first, then
live bars), on backtrader's simulated broker: what the tests run. The history is not predicted on
(nothing is traded there): the default replay's 5,000 bars of backfill cost what a backtest of
them does, seconds. --ib and --oanda attach backtrader's own stores (they need `pip install IbPy2`
or `oandapy` and a running TWS/Gateway or an Oanda account); no broker can be reached where this
project is tested, so those two paths are written from backtrader's documentation and have never
run here. A store's feed is asked for daily bars from two years back (its backfill covers the
bundle's warm-up; a feed that goes live before it is complete gets a warning) and resampled to
daily bars, the bars the bundle was trained on (a feed of other bars is refused). Run it again
after a stop or a crash with the same --journal: it goes on from the journal's last decision as if
it had never stopped (a dry run's cash, position and bracket come back from the journal, a broker
keeps its own) and writes nothing twice; with no new bar it writes nothing.
"""
import argparse
import datetime as dt

import backtrader as bt

from nt_backtrader import NeuralStrategy, load_ohlcv
from nt_backtrader.plugin import live_replay


def live_feed(cerebro: bt.Cerebro, args) -> None:
    """Add the live data (and a store's broker) to cerebro."""
    if args.ib or args.oanda:  # untested here: no broker is reachable from this project's machines
        # daily bars from two years back: the backfill (history) covers the bundle's warm-up, then live
        since = dt.datetime.now() - dt.timedelta(days=730)
        if args.ib:
            store = bt.stores.IBStore(host=args.host, port=args.port, clientId=args.client_id)
            data = store.getdata(dataname=args.ib, timeframe=bt.TimeFrame.Days, compression=1, fromdate=since,
                                 backfill_start=True)
        else:
            store = bt.stores.OandaStore(token=args.token, account=args.account, practice=True)
            data = store.getdata(dataname=args.oanda, timeframe=bt.TimeFrame.Days, compression=1, fromdate=since,
                                 backfill_start=True)
        cerebro.resampledata(data, timeframe=bt.TimeFrame.Days, compression=1, name=args.name)
        cerebro.setbroker(store.getbroker())
        return
    frame = load_ohlcv(csv=args.replay) if args.replay else load_ohlcv(dataset="sp500")
    live_from = dt.date.fromisoformat(args.live_from) if args.live_from else frame.index[-21].date()
    cerebro.adddata(live_replay(frame, name=args.name, live_from=live_from))
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.0001)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="a bundle written by `nt-backtrader train` or `update`")
    parser.add_argument("--journal", default="journal.csv", help="the decision journal (CSV), continued if it exists")
    parser.add_argument("--replay", help="a CSV (Yahoo format) replayed as a live feed (default: the embedded S&P 500)")
    parser.add_argument("--live-from", help="first live bar of the replay (default: the last 21 bars are live)")
    parser.add_argument("--name", default="sp500", help="the feed's name: an asset the bundle was trained on "
                        "uses its own scaler, another the pooled one")
    parser.add_argument("--ib", help="an Interactive Brokers contract, e.g. SPY-STK-SMART-USD (untested here)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7497)
    parser.add_argument("--client-id", type=int, default=35)
    parser.add_argument("--oanda", help="an Oanda instrument, e.g. EUR_USD (untested here)")
    parser.add_argument("--token", help="Oanda API token")
    parser.add_argument("--account", help="Oanda account")
    args = parser.parse_args(argv)

    cerebro = bt.Cerebro(stdstats=False)
    live_feed(cerebro, args)
    cerebro.addstrategy(NeuralStrategy, bundle=args.bundle, journal=args.journal)
    (strategy,) = cerebro.run()
    decided = strategy.decision_table()
    if len(decided):
        last = decided.iloc[-1]
        print(f"{len(decided)} live bars decided, the last {last['date'].date()}: {last['action']}, side "
              f"{last['side']:+d}, {last['fraction']:.1%} of equity; journal: {args.journal}")
    else:
        print(f"no new bar to decide; journal: {args.journal} (unchanged)")
    return strategy


if __name__ == "__main__":
    main()
