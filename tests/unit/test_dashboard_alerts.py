"""The statistics and the signature of satisfaction alerts, against known values."""

from __future__ import annotations

import httpx
import pytest

from tacit.core.settings import TacitSettings
from tacit.dashboard.alerts import ALL_MODELS, Shares, _retryable, baseline, judge, rise_p_value, signature

REQUEST = httpx.Request("POST", "http://hooks.example/tacit")


def test_p_value_matches_the_textbook_two_proportion_z_test() -> None:
    # 45/100 against 30/100: pooled 0.375, z = 0.15 / sqrt(0.375 * 0.625 * 0.02) = 2.191 (statsmodels'
    # proportions_ztest gives the same z), one-sided p = 0.01423
    assert rise_p_value(Shares(45, 100), Shares(30, 100)) == pytest.approx(0.01423, abs=1e-5)


def test_a_fall_or_no_data_is_never_significant() -> None:
    assert rise_p_value(Shares(30, 100), Shares(45, 100)) > 0.5
    assert rise_p_value(Shares(0, 0), Shares(3, 10)) == 1.0
    assert rise_p_value(Shares(0, 10), Shares(0, 10)) == 1.0  # pooled share 0: nothing to test


@pytest.mark.parametrize(("current", "previous", "raised"), [
    (Shares(45, 100), Shares(30, 100), True),
    (Shares(9, 20), Shares(6, 20), False),  # the same shares on too few labels (under the minimum count)
    (Shares(3200, 10000), Shares(3000, 10000), False),  # significant, but a rise of only 2 points
    (Shares(30, 100), Shares(45, 100), False),  # a fall
])
def test_an_alert_needs_enough_labels_a_significant_test_and_a_rise_that_matters(
        current: Shares, previous: Shares, raised: bool) -> None:
    settings = TacitSettings(dashboard_alert_min_count=50, dashboard_alert_p_value=0.05,
                             dashboard_alert_min_increase=0.05)
    assert judge(current, previous, settings)[1] is raised


@pytest.mark.parametrize(("error", "retried"), [
    (httpx.ConnectError("refused"), True),
    (httpx.HTTPStatusError("503", request=REQUEST, response=httpx.Response(503, request=REQUEST)), True),
    (httpx.HTTPStatusError("401", request=REQUEST, response=httpx.Response(401, request=REQUEST)), False),
])
def test_the_webhook_retries_connection_and_server_errors_only(error: Exception, retried: bool) -> None:
    assert _retryable(error) is retried


def test_a_new_model_is_compared_with_the_models_it_replaced() -> None:
    settings = TacitSettings(dashboard_alert_min_count=50)
    previous = {"old": Shares(20, 200), ALL_MODELS: Shares(20, 200), "new": Shares(1, 5)}
    assert baseline("old", previous, settings) == (Shares(20, 200), "the window before")
    assert baseline("new", previous, settings)[0] == Shares(20, 200)  # too few of its own: what it replaced
    assert baseline("newest", previous, settings)[0] == Shares(20, 200)


def test_the_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
