"""The benchmark's pure parts: table, ratios, /proc parsing, AWS call counting."""

from __future__ import annotations

import json

import pytest

from bench import calls, procs, report
from bench.report import LIMIT, Row

STATUS = """Name:\tpython
Umask:\t0022
State:\tS (sleeping)
Pid:\t4242
PPid:\t1
VmPeak:\t 1200000 kB
VmHWM:\t  204800 kB
VmRSS:\t  102400 kB
Threads:\t4
"""


def test_parse_status_reads_hwm_and_rss_in_bytes():
    assert procs.parse_status(STATUS) == {"VmHWM": 204800 * 1024, "VmRSS": 102400 * 1024}


def test_parse_status_of_a_kernel_thread_has_no_figures():
    assert procs.parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n") == {}


def test_parse_status_refuses_an_unknown_unit():
    with pytest.raises(ValueError, match="unit"):
        procs.parse_status("VmHWM:\t12 MB\n")


def test_parse_stat_survives_spaces_and_parentheses_in_the_name():
    assert procs.parse_stat("77 (ray::IDLE) (x)) S 12 77 77 0 -1") == ("ray::IDLE) (x)", 12)


def test_descendants_walks_the_whole_tree_and_nothing_else():
    table = {1: ("init", 0), 10: ("batch", 1), 11: ("child", 10), 12: ("grandchild", 11),
             20: ("moto", 1), 21: ("thread", 20)}  # fmt: skip
    assert sorted(procs.descendants(10, table)) == [11, 12]
    assert procs.descendants(12, table) == []


def test_peaks_by_role_counts_processes_and_keeps_the_largest():
    peaks = procs.Peaks(
        [
            procs.ProcessPeak("batch", 10, "python", 100),
            procs.ProcessPeak("batch child", 11, "python", 300),
            procs.ProcessPeak("batch child", 12, "python", 200),
        ]
    )
    assert peaks.by_role() == [("batch", 1, 100), ("batch child", 2, 300)]
    assert peaks.largest() == 300


def test_sampler_sees_this_process():
    import os

    sampler = procs.RssSampler({"me": os.getpid()})
    sampler.sample()
    assert sampler.peaks.processes[0].hwm > 0
    assert sampler.peaks.total_rss > 0


@pytest.mark.parametrize(
    ("value", "base", "text"),
    [(2.0, 1.0, "x2.00"), (0.5, 2.0, "x0.25"), (250.0, 2.0, "x125"), (None, 1.0, "-"),
     (1.0, None, "-"), (1.0, 0.0, "-")],
)  # fmt: skip
def test_ratio(value, base, text):
    assert report.ratio(value, base) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (512, "512 B"), (2048, "2.0 KiB"), (3 << 20, "3.0 MiB"), (5 << 30, "5.0 GiB")],
)
def test_human_bytes(size, text):
    assert report.human_bytes(size) == text


def test_table_divides_each_row_by_the_limit_of_its_own_size():
    rows = [
        Row(LIMIT, 1000, 0.5, 100 << 20),
        Row("naive pandas", 1000, 1.0, 200 << 20, "pandas 200.0 MiB"),
        Row(LIMIT, 10, 0.1, 50 << 20),
        Row("byom (local stack)", 10, 0.4, 500 << 20, note="a|b"),
        Row("Ray Data", 1000, note="no number: not installed"),
    ]
    lines = report.table(rows).splitlines()
    assert lines[0].startswith("| name | rows | seconds | rows/s | peak RSS |")
    assert len(lines) == 2 + len(rows)
    pandas = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert pandas == [
        "naive pandas", "1,000", "1.000", "1,000", "200.0 MiB", "x2.00", "x0.50", "x2.00",
        "pandas 200.0 MiB",
    ]  # fmt: skip
    byom = [cell.strip() for cell in lines[5].strip("|").split("|")]
    assert byom[5] == "x4.00" and byom[7] == "x10"
    assert byom[-1] == "a/b"  # a pipe would break the markdown row
    ray = [cell.strip() for cell in lines[6].strip("|").split("|")]
    assert ray[2:8] == ["-"] * 6 and ray[-1] == "no number: not installed"


def test_roles_line_puts_the_largest_first_and_counts_children():
    line = report.roles_line([("moto", 1, 400 << 20), ("batch child", 3, 150 << 20)])
    assert line == "moto 400.0 MiB, batch child (3, largest) 150.0 MiB"
    assert report.roles_line([("a", 1, 1), ("b", 1, 2)], top=1) == "b 2 B"


def test_breakdown_lists_only_runs_with_processes():
    rows = [Row("a", 10, 1.0, 5, all_processes="x 5 B"), Row("b", 10, note="none")]
    assert report.breakdown(rows) == ["- a, 10 rows: x 5 B"]


def test_machine_parsers():
    assert report.parse_cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC 9R14\n") == "AMD EPYC 9R14"
    assert report.parse_meminfo("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == 24576000 * 1024


def _entry(method, url, scope="s3", headers=None, body=""):
    auth = f"AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/{scope}/aws4_request, X=y"
    return json.dumps(
        {"method": method, "url": url, "headers": {"Authorization": auth, **(headers or {})},
         "body": body, "body_encoded": False}
    )  # fmt: skip


def test_count_calls_by_service_and_operation():
    base = "http://127.0.0.1:5000"
    lines = [
        _entry("GET", f"{base}/b/input/001-f.csv", headers={"Range": "bytes=0-9"}),
        _entry("GET", f"{base}/b/input/001-f.csv", headers={"Range": "bytes=10-19"}),
        _entry("PUT", f"{base}/b/staging/j/out/0", headers={}),
        _entry(
            "PUT",
            f"{base}/b/output/o.csv?partNumber=1&uploadId=u",
            headers={"x-amz-copy-source": "b/staging/j/out/0"},
        ),
        _entry("POST", f"{base}/b/output/o.csv?uploads"),
        _entry("POST", f"{base}/b/output/o.csv?uploadId=u"),
        _entry("HEAD", f"{base}/b/input/001-f.csv"),
        _entry("GET", f"{base}/b?list-type=2&prefix=staging/"),
        _entry(
            "POST",
            f"{base}/",
            "sqs",
            {"X-Amz-Target": "AmazonSQS.ReceiveMessage"},
            '{"QueueUrl": "http://x/123/byom-status"}',
        ),
        _entry(
            "POST",
            f"{base}/",
            "sqs",
            {"X-Amz-Target": "AmazonSQS.ReceiveMessage"},
            '{"QueueUrl": "http://x/123/bench-done-events"}',
        ),
        _entry("POST", f"{base}/", "dynamodb", {"X-Amz-Target": "DynamoDB_20120810.UpdateItem"}),
        _entry("POST", f"{base}/", "events", body="Action=PutEvents&Version=2015"),
        # The benchmark's own upload of the input is not the job's.
        _entry("PUT", f"{base}/b/input/001-f.csv"),
        "",
    ]
    # Two entries on one line: moto writes an entry and its newline apart.
    text = "\n".join(lines[:2]) + lines[2] + "\n" + "\n".join(lines[3:])
    counts = calls.count_calls(
        text, ignore_queue="bench-done-events", ignore_upload_of="input/001-f.csv"
    )
    assert counts == {
        ("S3", "GetObject (range)"): 2,
        ("S3", "PutObject"): 1,
        ("S3", "UploadPartCopy"): 1,
        ("S3", "CreateMultipartUpload"): 1,
        ("S3", "CompleteMultipartUpload"): 1,
        ("S3", "HeadObject"): 1,
        ("S3", "ListObjects"): 1,
        ("SQS", "ReceiveMessage"): 1,
        ("DynamoDB", "UpdateItem"): 1,
        ("EventBridge", "PutEvents"): 1,
    }


def test_s3_operation_names_deletes_and_plain_gets():
    assert calls.s3_operation("DELETE", "http://h/b/k", {}) == "DeleteObject"
    assert calls.s3_operation("DELETE", "http://h/b/k?uploadId=u", {}) == "AbortMultipartUpload"
    assert calls.s3_operation("GET", "http://h/b/k", {}) == "GetObject"
    assert calls.s3_operation("PUT", "http://h/b/k", {"X-Amz-Copy-Source": "b/j"}) == "CopyObject"
