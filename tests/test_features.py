"""Causal features: bar t never depends on a bar after t, nor on where the array starts."""
from __future__ import annotations

import numpy as np

from nt_backtrader.features import FEATURE_NAMES, LOOKBACK, Scaler, compute_features, windows

from conftest import with_noise_after


def arrays(frame):
    return [frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]


def test_noise_after_t_leaves_features_up_to_t_bit_identical(sp500_short):
    cut = sp500_short.index[700]
    clean = compute_features(*arrays(sp500_short))
    noisy = compute_features(*arrays(with_noise_after(sp500_short, cut)))
    np.testing.assert_array_equal(clean[:701], noisy[:701])
    assert not np.allclose(clean[701:], noisy[701:], equal_nan=True)


def test_features_do_not_depend_on_where_the_array_starts(sp500_short):
    full = compute_features(*arrays(sp500_short))
    late = compute_features(*arrays(sp500_short.iloc[500:]))
    np.testing.assert_array_equal(full[500 + LOOKBACK - 1:], late[LOOKBACK - 1:])
    assert np.isnan(late[:LOOKBACK - 1]).all() and np.isfinite(late[LOOKBACK - 1:]).all()


def test_feature_values_by_hand(sp500_short):
    close = sp500_short["close"].to_numpy()
    features = compute_features(*arrays(sp500_short))
    t = 400
    logret = np.diff(np.log(close))
    vol = logret[t - 63:t].std(ddof=1)  # returns of bars t-62 .. t
    expected = np.log(close[t] / close[t - 21]) / (vol * np.sqrt(21))
    assert abs(features[t, FEATURE_NAMES.index("ret_21d")] - expected) < 1e-12 * abs(expected)
    assert abs(features[t, FEATURE_NAMES.index("vol_21d")] - logret[t - 21:t].std(ddof=1) * np.sqrt(252)) < 1e-12


def test_scaler_uses_only_the_rows_it_is_fitted_on(sp500_short):
    features = compute_features(*arrays(sp500_short))
    train = features[LOOKBACK:600]
    scaler = Scaler.fit(train)
    np.testing.assert_allclose(scaler.transform(train).mean(axis=0), 0, atol=0.05)  # clipping moves it a little
    shifted = features.copy()
    shifted[600:] *= 10.0
    assert np.array_equal(Scaler.fit(shifted[LOOKBACK:600]).mean, scaler.mean)


def test_windows_end_at_their_row():
    scaled = np.arange(20.0).reshape(10, 2)
    out = windows(scaled, 3, np.array([2, 9]))
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], scaled[0:3])  # rows 0, 1, 2: oldest first, the row itself last
    np.testing.assert_array_equal(out[1], scaled[7:10])
