"""The suite runs with no network: the autouse fixture refuses every way out, yfinance's included."""
from __future__ import annotations

import socket

import pytest
from curl_cffi import requests as curl_requests


def test_python_sockets_and_curl_cffi_are_refused():
    with pytest.raises(RuntimeError, match="reach the network"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(RuntimeError, match="reach the network"):
        curl_requests.get("http://127.0.0.1:9/")
