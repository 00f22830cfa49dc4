#!/usr/bin/env python3
"""Independent reference for the worker's indicators (worker/src/broker/indicators.rs).

This script produced the expected values hard-coded in the `indicators` unit tests: it was
run once (`python3 worker/tests/reference_indicators.py`) and its output pasted into the
tests, which compare the Rust results against them within a small tolerance. It is written
from the textbook definitions in plain Python floats, sharing no code with the Rust side:

- SMA(n): the mean of the last n prices.
- EMA(n): alpha = 2 / (n + 1), seeded with the SMA of the first n prices, then
  ema = alpha * price + (1 - alpha) * ema for every later price.
- RSI(n), Wilder's smoothing: over the price changes, the first average gain and loss are
  the plain means of the first n changes; each later change updates them as
  avg = (avg * (n - 1) + current) / n. RSI = 100 - 100 / (1 + avg_gain / avg_loss),
  100 when there were no losses, 50 when there were no moves at all.
"""

# A fixed series of 33 closes (the sample often used to illustrate Wilder's RSI).
PRICES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89,
    46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25,
    45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57, 43.42, 42.66, 43.13,
]


def sma(prices, n):
    window = prices[-n:]
    return sum(window) / n


def ema(prices, n):
    alpha = 2.0 / (n + 1)
    value = sum(prices[:n]) / n
    for price in prices[n:]:
        value = alpha * price + (1.0 - alpha) * value
    return value


def rsi(prices, n):
    changes = [later - earlier for earlier, later in zip(prices, prices[1:])]
    gains = [max(change, 0.0) for change in changes]
    losses = [max(-change, 0.0) for change in changes]
    avg_gain = sum(gains[:n]) / n
    avg_loss = sum(losses[:n]) / n
    for gain, loss in zip(gains[n:], losses[n:]):
        avg_gain = (avg_gain * (n - 1) + gain) / n
        avg_loss = (avg_loss * (n - 1) + loss) / n
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


if __name__ == "__main__":
    for name, function, period in [
        ("sma", sma, 5), ("sma", sma, 10), ("sma", sma, 33),
        ("ema", ema, 5), ("ema", ema, 10),
        ("rsi", rsi, 5), ("rsi", rsi, 14),
    ]:
        print(f'("{name}", {period}, "{function(PRICES, period)!r}"),')
    # The first RSI(14) of the sample, over the first 15 closes (published as about 70.5).
    print("# rsi(14) of the first 15 closes:", rsi(PRICES[:15], 14))
