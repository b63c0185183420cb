from __future__ import annotations

import json

from shared import metrics


def test_metrics_are_emf_lines_and_nothing_when_empty(capsys):
    metrics.flush()  # whatever earlier tests in this process left behind
    capsys.readouterr()
    metrics.flush()
    assert capsys.readouterr().out == ""
    metrics.count("JobsSucceeded")
    metrics.count("RowsScored", 7)
    metrics.flush()
    blob = json.loads(capsys.readouterr().out)
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "byom"
    assert {m["Name"] for m in directive["Metrics"]} == {"JobsSucceeded", "RowsScored"}
    assert blob["RowsScored"] == [7.0] or blob["RowsScored"] == 7.0
