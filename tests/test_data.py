"""load_ohlcv: embedded data, CSV formats, the download cache, and every bad-input error."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nt_backtrader.data import load_csv, load_ohlcv, load_ticker, require_bars
from nt_backtrader.errors import DataError

from conftest import edit_field, yahoo_csv


def test_embedded_datasets_are_real_daily_ohlcv():
    for name in ("sp500", "nasdaq"):
        frame = load_ohlcv(dataset=name)
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert frame.index[0] == pd.Timestamp("1999-01-04") and frame.index[-1] == pd.Timestamp("2018-12-31")
        assert len(frame) == 5031 and frame.index.is_monotonic_increasing and frame.index.is_unique
        assert (frame["high"] >= frame["low"]).all() and (frame[["open", "close"]] > 0).all().all()


def test_sp500_is_the_default_and_dates_slice(sp500):
    frame = load_ohlcv(start="2008-01-01", end="2008-12-31")
    assert frame.equals(sp500.loc["2008"])
    assert frame.index[0] == pd.Timestamp("2008-01-02") and len(frame) == 253


def test_yahoo_csv_round_trip(tmp_path, sp500_short):
    yahoo_csv(tmp_path / "spx.csv", sp500_short)
    frame = load_ohlcv(csv=str(tmp_path / "spx.csv"))
    pd.testing.assert_frame_equal(frame, sp500_short, check_freq=False, rtol=1e-12)


def test_adjusted_close_scales_open_high_low_close(tmp_path, sp500_short):
    # A 2:1 split in the middle: raw prices halve, the adjusted close does not jump.
    raw = sp500_short.copy()
    ratio = np.where(np.arange(len(raw)) < 100, 0.5, 1.0)
    raw.loc[raw.index[:100], ["open", "high", "low", "close"]] *= 2.0
    yahoo_csv(tmp_path / "split.csv", raw, adj_ratio=ratio)
    frame = load_csv(tmp_path / "split.csv")
    np.testing.assert_allclose(frame[["open", "high", "low", "close"]], sp500_short[["open", "high", "low", "close"]])
    assert frame["close"].pct_change().abs().max() < 0.12  # no fake -50% day


def test_generic_csv_with_column_mapping(tmp_path, sp500_short):
    pd.DataFrame({"Datum": sp500_short.index.strftime("%d.%m.%Y").tolist()[:5], "Eroeffnung": sp500_short["open"][:5],
                  "Hoch": sp500_short["high"][:5], "Tief": sp500_short["low"][:5], "Schluss": sp500_short["close"][:5]}
                 ).to_csv(tmp_path / "de.csv", index=False)
    mapping = {"date": "Datum", "open": "Eroeffnung", "high": "Hoch", "low": "Tief", "close": "Schluss"}
    frame = load_ohlcv(csv=str(tmp_path / "de.csv"), columns=mapping)
    np.testing.assert_allclose(frame["close"], sp500_short["close"][:5])
    assert (frame["volume"] == 0).all()  # a price-only file is fine


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("Close,Adj Close", "Last,Adj Close"), "missing column(s) ['close']"),
    (lambda t: t.replace("2004-01-06", "06/31/2004"), "row 4: '06/31/2004' is not a date"),
    (lambda t: t.replace("2004-01-06", "2004-01-05"), "row 4: duplicate date 2004-01-05"),
    (lambda t: t.replace("2004-01-06", "2003-12-01"), "row 4: date 2003-12-01 comes after 2004-01-05"),
    (lambda t: edit_field(t, 3, "High", "null"), "row 4: high is missing or not a number ('null')"),
    (lambda t: edit_field(t, 3, "Close", ""), "row 4: close is missing or not a number"),
    (lambda t: edit_field(t, 3, "Low", "-5"), "row 4: low is -5.0, prices must be positive"),
    (lambda t: edit_field(t, 3, "Low", "99999"), "row 4: high"),
    (lambda t: "", "not a readable CSV file"),
])
def test_malformed_csv_names_file_and_row(tmp_path, sp500_short, edit, message):
    path = tmp_path / "bad.csv"
    path.write_text(edit(yahoo_csv(path, sp500_short.iloc[:10])))
    with pytest.raises(DataError) as info:
        load_csv(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_dataset_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="no such file; give a CSV path"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown dataset 'sp5000': choose one of sp500, nasdaq"):
        load_ohlcv(dataset="sp5000")


def test_date_range_outside_data():
    with pytest.raises(DataError, match="no bars between 2030-01-01"):
        load_ohlcv(start="2030-01-01")


def test_too_few_bars(sp500_short):
    with pytest.raises(DataError, match="1511 bars .* too few: the walk-forward needs at least 2000"):
        require_bars(sp500_short, 2000, "the walk-forward")


def test_ticker_is_downloaded_once_then_read_from_cache(tmp_path, monkeypatch, sp500_short):
    import yfinance

    calls = []

    def fake_download(symbol, **kwargs):
        calls.append(symbol)
        frame = sp500_short.iloc[:30].rename(columns=str.title)
        frame["Adj Close"] = frame["Close"]
        frame.columns = pd.MultiIndex.from_product([frame.columns, [symbol]])  # yfinance >= 0.2.48 layout
        return frame.tz_localize("America/New_York")

    monkeypatch.setattr(yfinance, "download", fake_download)
    first = load_ticker("spy", tmp_path)
    assert calls == ["spy"] and (tmp_path / "SPY.csv").is_file()

    def offline(*args, **kwargs):
        raise AssertionError("the cache must be read without downloading")

    monkeypatch.setattr(yfinance, "download", offline)
    second = load_ohlcv(ticker="spy", cache_dir=str(tmp_path))
    pd.testing.assert_frame_equal(first, second)
    np.testing.assert_allclose(second["close"], sp500_short["close"][:30])


def test_ticker_without_network_or_cache_names_the_alternatives(tmp_path, monkeypatch):
    import yfinance

    monkeypatch.setattr(yfinance, "download", lambda *a, **k: pd.DataFrame())  # what a dead network returns
    with pytest.raises(DataError, match=r"could not download 'QQQ'.*use --csv FILE or the embedded data"):
        load_ticker("QQQ", tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written cache
