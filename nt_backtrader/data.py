"""load_universe / load_ohlcv: embedded data, CSV files or cached yfinance downloads -> validated DataFrames.

Each asset's frame is indexed by date (strictly increasing, no duplicates) with float columns
open, high, low, close, volume, on its own calendar (nothing is forward-filled). Where the source
has an adjusted close, open/high/low/close are scaled by adj_close / close so that splits and
dividends are not fake gaps. Every problem raises DataError naming the asset's file, dataset or
ticker, the row and what to do; what is repaired (a bar's range widened to its open and close) or
read as absent (a volume of 0 on every bar) is a warning, once per asset.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import importlib.util
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from .config import DATASETS, DataConfig
from .datasets import PANEL, PANEL_END, panel_classes, panel_file
from .errors import DataError

EMBEDDED = {name: f"arch.data.{name}" for name in DATASETS if name != PANEL}  # the panel ships in .datasets
PRICES = ["open", "high", "low", "close"]
COLUMNS = PRICES + ["volume"]
# Spellings of column names seen in Yahoo, stooq and broker exports, lower-cased.
ALIASES = {"adj close": "adj_close", "adjclose": "adj_close", "adj_close": "adj_close",
           "datetime": "date", "timestamp": "date", "time": "date", "vol": "volume"}


class Asset(NamedTuple):
    name: str                          # the universe's key: dataset name, panel or upper-case ticker, CSV file stem
    source: str                        # how messages name it: "dataset sp500", "panel/SPY.csv.gz", the file path
    load: Callable[[], pd.DataFrame]   # the validated, adjusted, unsliced frame


def load_universe(config: DataConfig | None = None, refresh: bool = False, **overrides) -> dict[str, pd.DataFrame]:
    """Every asset the config names, in order: asset name -> its validated, adjusted, date-sliced frame.

    Precedence: files (csv, then csv_dir's), else tickers, else the embedded datasets. Keyword
    overrides are fields of DataConfig, e.g. load_universe(dataset=("sp500", "nasdaq"), start="2005-01-01").
    `refresh`: tickers are downloaded again, not read from the cache.
    """
    cfg = data_config(config, **overrides)
    end = data_end(cfg)
    return {asset.name: slice_dates(asset.load(), cfg.start, end, source=asset.source)
            for asset in assets(cfg, refresh)}


SINGLE = "data"  # the name of a lone DataFrame's asset, as backtrader names an unnamed feed


def as_universe(frames) -> dict[str, pd.DataFrame]:
    """A name -> frame mapping from a mapping, or from one DataFrame (named 'data')."""
    return dict(frames) if isinstance(frames, Mapping) else {SINGLE: frames}


def load_ohlcv(config: DataConfig | None = None, **overrides) -> pd.DataFrame:
    """The one asset the config names, e.g. load_ohlcv(dataset="nasdaq"), load_ohlcv(csv="spx.csv"),
    load_ohlcv(ticker="SPY"); a config with several assets raises DataError (use load_universe)."""
    cfg = data_config(config, **overrides)
    asset, *others = assets(cfg)
    if others:
        raise DataError(f"the data names {len(others) + 1} assets ({universe_name(cfg)}) where one is expected; "
                        "give one source, or load them all with load_universe")
    return slice_dates(asset.load(), cfg.start, data_end(cfg), source=asset.source)


def data_end(cfg: DataConfig) -> str | None:
    """data.end, or for the panel without one PANEL_END (said once): after it some series have ended,
    and the six that run to 2021 would make a book of their own."""
    if cfg.end or PANEL not in source_datasets(cfg):
        return cfg.end
    warnings.warn(f"dataset panel: the data ends at {PANEL_END}, the earliest last bar of its 28 series (GDX's; "
                  "16 more end by 2018-04), so every asset trades to the end; give --end 2021-03-31 for the years "
                  "when a few run on", stacklevel=3)  # the line that called load_universe / load_ohlcv
    return PANEL_END


def source_datasets(cfg: DataConfig) -> tuple[str, ...]:
    """The embedded datasets the universe is made of: none where files or tickers are given (they win)."""
    return () if cfg.csv or cfg.csv_dir or cfg.tickers else cfg.dataset


def data_config(config: DataConfig | None = None, **overrides) -> DataConfig:
    """`config` with DataConfig fields replaced; `ticker=` is accepted as the one-symbol spelling of `tickers=`."""
    if "ticker" in overrides:
        overrides["tickers"] = overrides.pop("ticker")
    return DataConfig(**{**(vars(config) if config else {}), **overrides})


def assets(cfg: DataConfig, refresh: bool = False) -> list[Asset]:
    """The universe before anything is read; names are checked here so a clash fails before any loading."""
    files = [Path(path) for path in cfg.csv] + (csv_files(cfg.csv_dir) if cfg.csv_dir else [])
    if files:
        found = [Asset(path.stem, str(path), functools.partial(load_csv, path, cfg.columns)) for path in files]
    elif cfg.tickers:
        found = [Asset(symbol.upper(), f"ticker {symbol.upper()}",
                       functools.partial(load_ticker, symbol, cfg.cache_dir, refresh)) for symbol in cfg.tickers]
    elif cfg.dataset:
        found = [asset for name in cfg.dataset for asset in dataset_assets(name)]
    else:
        raise DataError("no data source: give --dataset sp500|nasdaq|panel, --csv FILE, --csv-dir DIR or "
                        "--tickers SYMBOLS")
    # spy.csv and SPY.csv are one series (and one file on case-insensitive disks): never two assets
    seen: dict[str, Asset] = {}
    for asset in found:
        other = seen.get(asset.name.casefold())
        if other:
            clash = f"two assets are named '{asset.name}'" if other.name == asset.name else \
                f"'{other.name}' and '{asset.name}' are one asset name (case does not count)"
            raise DataError(f"{clash} ({other.source} and {asset.source}): "
                            "rename one of the files, or list each dataset and ticker once")
        seen[asset.name.casefold()] = asset
    traded_names(cfg, [asset.name for asset in found])
    return found


def dataset_assets(name: str) -> list[Asset]:
    """An embedded dataset's assets: the panel's 28 tickers (classes.csv's order), else the one named `name`."""
    if name == PANEL:
        return [Asset(ticker, f"panel/{ticker}.csv.gz", functools.partial(load_panel, ticker))
                for ticker in panel_classes()]
    return [Asset(name, f"dataset {name}", functools.partial(load_embedded, name))]


def traded_names(cfg: DataConfig, names: list[str]) -> list[str]:
    """data.trade spelt as the universe `names` spell it (case does not count), in data.trade's order;
    a name the universe lacks is a DataError."""
    spelt = {name.casefold(): name for name in names}
    unknown = [name for name in cfg.trade if name.casefold() not in spelt]
    if unknown:
        close = difflib.get_close_matches(unknown[0].casefold(), list(spelt), n=1)
        hint = f"did you mean '{spelt[close[0]]}'? " if close else ""
        raise DataError(f"data.trade names '{unknown[0]}', which is not in the universe ({', '.join(names)}): "
                        f"{hint}trade assets the data loads, or leave data.trade empty to trade them all")
    return [spelt[name.casefold()] for name in cfg.trade]


def traded(universe: dict, cfg: DataConfig) -> dict:
    """The assets of `universe` that are traded: data.trade's (case does not count), else all (the others
    are trained on only)."""
    wanted = {name.casefold() for name in cfg.trade}
    return {name: frame for name, frame in universe.items() if not wanted or name.casefold() in wanted}


def csv_files(folder: str | Path) -> list[Path]:
    """Every *.csv in `folder`, sorted by name; hidden files (editor and macOS '._' copies) are not assets."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; give --csv-dir a folder of CSV files, one per asset")
    files = sorted((path for path in folder.iterdir() if path.suffix.lower() == ".csv"
                    and not path.name.startswith(".") and path.is_file()), key=lambda path: path.name)
    if not files:
        raise DataError(f"{folder}: no *.csv files in this folder; put one CSV file per asset there")
    return files


def asset_names(cfg: DataConfig) -> list[str]:
    return [asset.name for asset in assets(cfg)]


def universe_name(cfg: DataConfig) -> str:
    """Short name of the universe for run folders and report titles: 'sp500', 'sp500+nasdaq', 'panel',
    'AAPL+9more', 'SPY+TLT@panel' (SPY and TLT traded, the panel learned)."""
    names = asset_names(cfg)
    if PANEL in source_datasets(cfg):
        name = "+".join(cfg.dataset)  # the datasets, not the panel's 28 tickers
    else:
        name = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}more"
    return f"{'+'.join(traded_names(cfg, names))}@{name}" if cfg.trade else name


def load_embedded(name: str) -> pd.DataFrame:
    if name not in EMBEDDED:
        raise DataError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}, or give --csv FILE")
    raw = read_arch_file(name)
    return validate(raw.reset_index(), source=f"dataset {name}", first_line=None)


def load_panel(ticker: str) -> pd.DataFrame:
    """One panel asset from the package's own gzip CSV (Date,Open,High,Low,Close,AdjClose,Volume)."""
    with panel_file(ticker).open("rb") as handle:
        raw = pd.read_csv(handle, compression="gzip", dtype=str, keep_default_na=False)
    return validate(raw, source=f"panel/{ticker}.csv.gz", first_line=2)


def read_arch_file(name: str) -> pd.DataFrame:
    """arch's own file of dataset `name`, read as arch.data.<name>.load() reads it, without importing arch:
    its package pulls in scipy and statsmodels, seconds that `nt-backtrader signal` has not got."""
    spec = importlib.util.find_spec("arch")
    path = Path(spec.origin).parent.joinpath(*EMBEDDED[name].split(".")[1:], f"{name}.csv.gz") if spec else None
    if path is None or not path.is_file():
        return importlib.import_module(EMBEDDED[name]).load()  # another layout: arch's loader says what is wrong
    raw = pd.read_csv(path)
    raw["Date"] = pd.to_datetime(raw["Date"])
    raw = raw.set_index("Date")
    return raw.apply(pd.to_numeric, errors="coerce")


def load_csv(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read Yahoo's format (Date,Open,High,Low,Close,Adj Close,Volume) or any CSV with a mapping.

    `columns` maps our names (date, open, high, low, close, volume, adj_close) to the file's.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a CSV path, --dataset sp500|nasdaq or --tickers SYMBOLS")
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)  # keep "null" visible
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[0]})") from None
    if len(raw.columns) == 1 and ";" in str(raw.columns[0]):  # a European export: one column, not a mapping problem
        raise DataError(f"{path}: the file is separated by ';' (its header is {str(raw.columns[0])!r}), not by ','; "
                        "save it again with ',' between fields and '.' as the decimal point")
    if columns:
        missing = [theirs for theirs in columns.values() if theirs not in raw.columns]
        if missing:
            raise DataError(f"{path}: column mapping names {missing} but the file has {list(raw.columns)}")
        raw = raw.rename(columns={theirs: ours for ours, theirs in columns.items()})
    return validate(raw, source=str(path), first_line=2)


def load_ticker(symbol: str, cache_dir: str | Path, refresh: bool = False) -> pd.DataFrame:
    """A yfinance download, cached as a Yahoo-format CSV; a cached symbol never touches the network unless
    `refresh` asks for its latest bars (the cache is replaced only by a complete download)."""
    cache = Path(cache_dir) / f"{symbol.upper()}.csv"
    if refresh or not cache.is_file():
        _download(symbol, cache)
    return load_csv(cache)


def _download(symbol: str, cache: Path) -> None:
    hint = (f"could not download '{symbol}' with yfinance (no network, or an unknown symbol) to refresh {cache}: "
            "leave out --refresh to use the cached bars, or give --csv FILE" if cache.is_file() else
            f"could not download '{symbol}' with yfinance (no network, or an unknown symbol) and no cache "
            f"at {cache}: use --csv FILE or the embedded data (--dataset sp500|nasdaq)")
    try:
        with _silenced("yfinance"):
            import yfinance
            raw = yfinance.download(symbol, period="max", auto_adjust=False, progress=False, threads=False)
    except Exception:  # yfinance raises many kinds on a dead network; all mean the same here
        raise DataError(hint) from None
    if raw is None or raw.empty:
        raise DataError(hint)
    if isinstance(raw.columns, pd.MultiIndex):
        raw.columns = raw.columns.get_level_values(0)
    raw.index = pd.DatetimeIndex(raw.index).tz_localize(None)
    raw.index.name = "Date"
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, raw[["Open", "High", "Low", "Close", "Adj Close", "Volume"]].to_csv())


@contextlib.contextmanager
def _silenced(logger_name: str):
    """No warnings, prints or log records from a chatty library: a failure is our one-line DataError."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _where(source: str, first_line: int | None, pos: int, date=None) -> str:
    """'file.csv row 17' for files (the line number an editor shows), the date otherwise."""
    if first_line is not None:
        return f"{source} row {pos + first_line}"
    if date is not None:
        return f"{source} at {pd.Timestamp(date).date()}"
    return f"{source} row {pos + 1}"


# 13/01/2009, 1.2.2009, 01-13-09: a day and a month in an order the text does not say, then the year
DAY_AND_MONTH_FIRST = r"^\s*(\d{1,2})([/.-])(\d{1,2})\2\d{2,4}\b"


def parse_dates(column: pd.Series, source: str, first_line: int | None) -> pd.Series:
    """The column as dates, NaT where a row is not one. Dates that start with a day and a month are read
    in the one order the column proves (see day_first), never some rows one way and some the other."""
    if not pd.api.types.is_string_dtype(column):
        return pd.to_datetime(column, errors="coerce")
    dates = pd.to_datetime(column, errors="coerce", format="mixed")  # each row on its own, not the first's format
    fields = column.str.extract(DAY_AND_MONTH_FIRST)
    day_and_month = fields[0].notna().to_numpy()
    if day_and_month.any():
        dayfirst = day_first(column, fields, source, first_line)
        # pandas reads even 2009-01-05 as May 1st with dayfirst=True: only these rows get it
        dates[day_and_month] = pd.to_datetime(column[day_and_month], errors="coerce", format="mixed",
                                              dayfirst=dayfirst)
    return dates


def day_first(column: pd.Series, fields: pd.DataFrame, source: str, first_line: int | None) -> bool:
    """Whether dates like 05/01/2009 are day-first: a first field above 12 proves it, a second above 12
    proves month-first, and dots alone (05.01.2009) are read day-first, as every country that writes them
    does. Otherwise, or with both proofs, the column is refused: reading it one way would move some bars
    by months without a word."""
    first, separator, second = fields[0].astype(float), fields[1], fields[2].astype(float)
    day, month = np.flatnonzero(first.to_numpy() > 12), np.flatnonzero(second.to_numpy() > 12)
    if day.size and month.size:
        i, j = day[0], month[0]
        raise DataError(f"{_where(source, first_line, i)}: {column.iloc[i]!r} is day-first but "
                        f"{_where(source, first_line, j)}: {column.iloc[j]!r} is month-first; write every date "
                        "year first, as 2009-01-13")
    if not day.size and not month.size:
        if separator.dropna().eq(".").all():
            return True
        example = column[first.notna()].iloc[0]
        raise DataError(f"{source}: dates like {example!r} could be day-first or month-first and no day above 12 "
                        "tells which; write them year first, as 2009-01-13")
    return bool(day.size)


def validate(raw: pd.DataFrame, source: str, first_line: int | None) -> pd.DataFrame:
    """Standardise names, parse and check every row; return the adjusted OHLCV frame."""
    frame = raw.rename(columns=lambda c: ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    required = ["date"] + PRICES
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(raw.columns)}. "
                        "Give a mapping, e.g. --columns date=Datum,close=Schluss")
    if frame.empty:
        raise DataError(f"{source}: a header and no rows; add the asset's bars, or leave it out of the data")
    has_volume = "volume" in frame.columns
    if not has_volume:
        frame["volume"] = 0.0  # price-only files are fine; volume features then read zero

    dates = parse_dates(frame["date"], source, first_line)
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(f"{_where(source, first_line, i)}: {frame['date'].iloc[i]!r} is not a date; "
                        "fix or remove the row")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()

    numeric = ["adj_close"] if "adj_close" in frame.columns else []
    values = {c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in COLUMNS + numeric}
    for column, series in values.items():
        bad = np.flatnonzero(~np.isfinite(series.to_numpy()))
        if bad.size:
            i = bad[0]
            raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: {column} is missing or not a number "
                            f"({frame[column].iloc[i]!r}); fix or remove the row ({bad.size} row(s) like this)")

    duplicated = np.flatnonzero(dates.duplicated().to_numpy())
    if duplicated.size:
        i = int(duplicated[0])
        raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: duplicate date {dates.iloc[i].date()}; "
                        "keep one row per date")
    step = np.diff(dates.to_numpy().astype("datetime64[ns]").astype(np.int64))
    if (step < 0).any():
        i = int(np.flatnonzero(step < 0)[0]) + 1
        raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: date {dates.iloc[i].date()} comes after "
                        f"{dates.iloc[i - 1].date()}; sort the file by date (oldest first)")

    for column in PRICES + numeric:
        bad = np.flatnonzero(values[column].to_numpy() <= 0)
        if bad.size:
            i = bad[0]
            raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: {column} is {values[column].iloc[i]}, "
                            "prices must be positive; fix or remove the row")
    bad = np.flatnonzero(values["volume"].to_numpy() < 0)
    if bad.size:
        i = bad[0]
        raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: negative volume; fix or remove the row")
    bad = np.flatnonzero(values["high"].to_numpy() < values["low"].to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(f"{_where(source, first_line, i, dates.iloc[i])}: high {values['high'].iloc[i]} is below "
                        f"low {values['low'].iloc[i]}; fix or remove the row")

    out = pd.DataFrame({c: values[c].to_numpy() for c in COLUMNS}, index=pd.DatetimeIndex(dates, name="date"))
    if not (out["volume"] > 0).any():  # FX and spot gold: no exchange volume
        warnings.warn(f"{source}: no volume ({'0 on every bar' if has_volume else 'no volume column'}); "
                      "the volume features read 0", stacklevel=2)  # the reader of the file: load_csv, ...
    widen_to_open_and_close(out, source)
    if numeric:
        ratio = values["adj_close"].to_numpy() / values["close"].to_numpy()
        out[PRICES] = out[PRICES].to_numpy() * ratio[:, None]
    return out


def widen_to_open_and_close(frame: pd.DataFrame, source: str) -> None:
    """Repair bars whose open or close lies outside their high-low range, in place, and say so once.

    The range is widened to take them in (high = max(high, open, close), low = min(low, open, close)),
    rather than the open and close clipped into it. backtrader fills a market order at the next bar's open,
    its slippage capped at that bar's high and low (slip_match), marks the account at the close, and
    triggers stops and limits on the high and low. Clipping would move the fill price and the close, the
    prices every return is made of; keeping them and widening the range moves only the extremes, to where
    the bar must have traded. Left alone, a sell at an open below the low would fill at the low: a better
    price than any traded.
    """
    prices = frame[["open", "close"]]
    outside = (prices.gt(frame["high"], axis=0) | prices.lt(frame["low"], axis=0)).any(axis=1).to_numpy()
    if not outside.any():
        return
    frame["high"] = frame[["high", "open", "close"]].max(axis=1)
    frame["low"] = frame[["low", "open", "close"]].min(axis=1)
    n = int(outside.sum())
    warnings.warn(f"{source}: {n} {'bar' if n == 1 else 'bars'} had the open or close outside the high-low range "
                  f"(first {frame.index[outside][0].date()}); widened the range to include them",
                  stacklevel=3)  # through validate, the reader of the file, as validate's own warning


def slice_dates(frame: pd.DataFrame, start: str | None, end: str | None, source: str) -> pd.DataFrame:
    try:
        lo = pd.Timestamp(start) if start else None
        hi = pd.Timestamp(end) if end else None
    except ValueError:
        raise DataError(f"--start/--end must be dates like 2005-01-31, got {start!r} / {end!r}") from None
    sliced = frame.loc[lo:hi]
    if sliced.empty:
        raise DataError(f"{source}: no bars between {start or 'the start'} and {end or 'the end'}; "
                        f"the data covers {span(frame)}")
    return sliced


def span(frame: pd.DataFrame) -> str:
    """The dates a frame covers, for a message (an empty one has none)."""
    return f"{frame.index[0].date()} to {frame.index[-1].date()}" if len(frame) else "no dates at all"


def require_bars(frame: pd.DataFrame, needed: int, what: str) -> None:
    if len(frame) < needed:
        raise DataError(f"{len(frame)} bars ({span(frame)}) are too few: "
                        f"{what} needs at least {needed}; use a longer date range or shorter windows")
