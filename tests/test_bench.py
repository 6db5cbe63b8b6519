"""The benchmarks run and report (on a small N, against the suite's broker); how fast is not asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import PROJECT_DIR

pytestmark = pytest.mark.slow


def run_bench(kafka_broker, script: str, *args: str) -> str:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    result = subprocess.run([sys.executable, str(PROJECT_DIR / "bench" / script), *args], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_consumer_throughput_reports_rates_and_ratios(kafka_broker):
    out = run_bench(kafka_broker, "consumer_throughput.py", "--messages", "3000", "--naive-messages", "300",
                    "--alternations", "1", "--group-members", "2")
    for label, count in (("(a) raw kafka-python poll", "3,000"), ("(b) stockmon consumer", "3,000"),
                         ("(p) plain poll+executemany", "3,000"), ("(b') with 4 alert rules", "3,000"),
                         ("(c) naive, commit per row", "300")):
        assert re.search(rf"{re.escape(label)}\s+{count} msgs\s+[\d.]+ s\s+[\d,]+ msg/s\s+peak RSS \d+ MiB", out), out
        # CPU a message: its own process, the broker's share, and the rate that would allow on every core
        assert re.search(rf"  {re.escape(label)}\s+[\d.]+ \+\s+[\d.]+ =\s+[\d.]+ us; at most [\d,]+ msg/s on \d+ "
                         r"cores", out), out
    assert re.search(r"ratio b/p \(stockmon vs the plain baseline, medians\): \d+\.\d\d; round by round: \d+\.\d\d"
                     r"\s+\(goal: at least 1\.5, never below 1\.1\)", out), out
    assert re.search(r"ratio b/a \(stored vs raw fetch\): \d+\.\d\d", out), out
    assert re.search(r"ratio b/c \(stored vs naive\):\s+\d+\.\d", out), out
    # Two consumers in one group share the messages and one database: every message stored once between them.
    assert re.search(r"\(g\) 2 in one group\s+3,000 msgs", out), out
    shares = re.search(r"ratio g/b \(2 consumers in one group and one database vs one consumer\): \d+\.\d\d; "
                       r"rows stored by each: ([\d,]+), ([\d,]+)$", out, re.MULTILINE)
    assert shares and sum(int(share.replace(",", "")) for share in shares.groups()) == 3000, out
    assert re.search(r"ratio b'/b \(alert rules .*, [\d,]+ alerts fired\): \d+\.\d\d", out), out
    assert re.search(r'\(b"\) with metrics counted\s+3,000 msgs', out), out
    assert re.search(r'ratio b"/b \(metrics on vs off, medians, scraped every second\): \d+\.\d\d\d', out), out
    assert re.search(r"median of the 1 run-by-run ratios .*: \d+\.\d\d\d", out), out
    assert re.search(r"time spent counting in the metrics run: \d+ ms of [\d.]+ s \(\d+\.\d\d%\); \d+ scrape\(s\) "
                     r"took \d+ ms \(\d+\.\d\d%\) on their own thread", out), out


def test_latency_reports_each_run_its_tail_stages_the_worst_p99_an_idle_quote_and_the_idle_load(kafka_broker):
    out = run_bench(kafka_broker, "e2e_latency.py", "--runs", "1", "--busy-cores", "1", "--busy-disk",
                    "--disk-load-mib", "4", "--rate", "200", "--seconds", "2", "--warmup", "1", "--idle-quotes", "3")
    stage = r"-?[\d.]+"
    for label in ("", "1 busy core\\(s\\): ", "disk busy: "):
        run = re.search(rf"^{label}run 1: offered [\d,]+ msg/s for 2 s: 400 of 400 rows committed; send -> committed "
                        rf"row \(ms\): p50 [\d.]+\s+p95 [\d.]+\s+p99 [\d.]+\s+max ([\d.]+); slowest 1%: "
                        rf"send -> broker ({stage}), broker -> row written ({stage}), "
                        rf"row written -> committed and seen ({stage})$", out, re.MULTILINE)
        assert run, out
        # The stages of the slowest quotes add up to their latency, which is at most the run's max.
        assert 0 < sum(float(run.group(index)) for index in (2, 3, 4)) <= float(run.group(1)) + 0.01, out
    for label in ("", "with 1 busy core\\(s\\): ", "with the disk busy: "):
        assert re.search(rf"^{label}p99 over 1 run\(s\) at 200 msg/s \(ms\): worst [\d.]+, median [\d.]+, each [\d.]+$",
                         out, re.MULTILINE), out
    rounds = re.search(r"^the disk writer finished ([\d,]+) round\(s\) of 4 MiB \(written, synced, removed\)$", out,
                       re.MULTILINE)
    assert rounds and int(rounds.group(1).replace(",", "")) >= 1, out
    assert re.search(r"^a single quote to an idle consumer \(ms\): median [\d.]+ of 3, max [\d.]+$", out, re.MULTILINE), out
    # The default hold of 50 ms: about 20 empty fetches a second (an answer during the join may come sooner).
    fetches = re.search(r"^an idle consumer: ([\d.]+) fetch requests/s to its broker \(each held (\d+) ms\), "
                        r"[\d.]+% of a core$", out, re.MULTILINE)
    assert fetches, out
    assert 40 <= int(fetches.group(2)) < 200 and 5 < float(fetches.group(1)) <= 25, out


def test_producer_overhead_reports_a_median(kafka_broker):
    out = run_bench(kafka_broker, "producer_overhead.py", "--polls", "20")
    assert "20 polls, each publishing one quote" in out, out
    assert re.search(r"producer overhead per quote .* median [\d,]+ us, p95 [\d,]+ us", out), out
    assert re.search(r"ratio overhead / API call: \d+\.\d\d", out), out


def test_producer_quota_reports_the_budget_used_and_the_bulk_refresh(kafka_broker):
    out = run_bench(kafka_broker, "producer_quota.py", "--seconds", "3", "--rates", "600", "--bulk-symbols", "150")
    assert re.search(r"ratio calls at 600/min, in flight vs one at a time: \d+\.\d\d", out), out
    assert re.search(r"\s+600\s+[\d,]+\s+[\d.]+%\s+\d+\s+[\d.]+ms", out), out
    assert re.search(r"REALTIME_BULK_QUOTES, 150 symbols at 75/min: \d+ calls in 3 s, longest wait between two "
                     r"refreshes of a symbol [\d.]+ s, producer CPU [\d.]+ ms per call", out), out


def test_monitor_scale_reports_the_board_chart_writes_and_rebuild(kafka_broker):
    out = run_bench(kafka_broker, "monitor_scale.py", "--rows", "20000", "--small-rows", "4000", "--symbols", "20",
                    "--messages", "2000", "--repeat", "2", "--rounds", "2")
    assert "built 20,000 rows over 20 symbols in" in out, out
    assert re.search(r"board \(20 symbols\): [\d,]+ ms on 20,000 rows, [\d,]+ ms on 4,000; ratio \d+\.\d\d", out), out
    assert re.search(r"chart --since 1d of 10 symbols: \d+\.\d\d s", out), out
    assert re.search(r"consumer store \(median of 2 rounds of 2,000 messages\): [\d,]+ msg/s into the large "
                     r"database, [\d,]+ into an empty one; ratio \d+\.\d\d \(target: at least 0.8\); rounds "
                     r"large/empty: [\d,]+/[\d,]+, [\d,]+/[\d,]+$", out, re.MULTILINE), out
    assert re.search(r"alert rebuild on start, 20 symbols, 4 rules: \d+\.\d\d s", out), out


def test_web_latency_reports_both_stream_counts_the_idle_cpu_and_the_first_paints(kafka_broker):
    out = run_bench(kafka_broker, "web_latency.py", "--rows", "20000", "--symbols", "20", "--rounds", "3",
                    "--clients", "10", "--idle-seconds", "1")
    assert re.search(r"built 20,000 quotes of 20 symbols in \d+ s", out), out
    for clients, arrivals in ((1, 3), (10, 30)):
        assert re.search(rf"commit to event, +{clients} stream\(s\): p50 \d+ ms, p99 \d+ ms, max \d+ ms "
                         rf"\({arrivals} arrivals\)", out), out
    assert re.search(r"server CPU with 10 idle streams: \d+\.\d% of one core", out), out
    assert re.search(r"first board row in Chromium: \d+ ms; 1-year chart drawn: \d+ ms", out), out
