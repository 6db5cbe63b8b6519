"""Both scripts as services: their metrics scraped over real HTTP while quotes, bad messages and an alert
flow through the real broker, their health answers, the listener's address and token rules, JSON logs."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from alphavantage_standin import AlphaVantageStandIn, Answer, changing_global_quotes, recorded
from conftest import TEST_API_KEY, Broker, pipeline_env, run_script, running, start_script, topic_values
from scrape import Scrape, get, health, listener_url, scrape
from test_faults import produce, wait_until
from webhook import Webhook

pytestmark = pytest.mark.slow

TOKEN = "scrape-token-0123456789abcdef"


def settled(url: str, name: str, expected: float, timeout: float = 60) -> Scrape:
    """The scrape in which `name` (unlabelled) first reads `expected`."""
    found: list[Scrape] = []

    def reached() -> bool:
        found[:] = [scrape(url)]
        return found[0].value(name) == expected

    wait_until(reached, timeout, message=f"{name} never reached {expected}")
    return found[0]


def test_metrics_count_what_flows_through_the_pipeline(kafka_broker: Broker, topic: str,
                                                      standin: AlphaVantageStandIn, tmp_path: Path) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(12))  # 121.74 ... 121.85, then no new one
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("note_rate_limit.json"), Answer(b"{}", status=500),
                   Answer(recorded("global_quote_MSFT.json").body, delay=1.5), recorded("global_quote_MSFT.json"))
    webhook = Webhook()
    webhook.start()
    hook_url = webhook.url(f"hook/{'h' * 24}")
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", STOCK_SYMBOLS="IBM,MSFT",
                       METRICS_ADDRESS="127.0.0.1:0", ALPHAVANTAGE_TIMEOUT="1", ALERT_RULES="IBM>121.80",
                       NOTIFY_URLS=hook_url, KAFKA_ALERTS_TOPIC=f"{topic}-alerts")
    producer_log, consumer_log = tmp_path / "producer.log", tmp_path / "consumer.log"
    try:
        with running(start_script("consumer.py", env=env, log_path=consumer_log)) as consumer, \
                running(start_script("producer.py", env=env, log_path=producer_log)) as producer:
            consumer_url, producer_url = listener_url(consumer_log), listener_url(producer_log)
            assert consumer_url.startswith("http://127.0.0.1:") and not consumer_url.endswith(":0")
            produced = settled(producer_url, "stockmon_quotes_published_total", 13)
            stored = settled(consumer_url, "stockmon_rows_stored_total", 13)
            # Bad messages straight onto the topic, and one stored quote sent again.
            first = json.loads(a_published_value(kafka_broker, topic))
            produce(kafka_broker, topic, [(b"x", b"not json"), (b"x", b"\xff\xfe"), (b"x", b"[1]"),
                                          (b"x", json.dumps({"v": 1, "price": 1}).encode()),
                                          (b"IBM", json.dumps(first).encode())])
            stored = settled(consumer_url, "stockmon_messages_read_total", 18)
            wait_until(lambda: sum(scrape(consumer_url).labelled("stockmon_consumer_lag", "partition").values()) == 0,
                       30, "the lag never reached 0")
            wait_until(lambda: scrape(consumer_url).labelled("stockmon_notifications_delivered_total", "channel"),
                       30, "the alert was never delivered")
            stored = scrape(consumer_url)
            produced = scrape(producer_url)
            answers = {path: (health(producer_url, path), health(consumer_url, path)) for path in ("/healthz", "/readyz")}
            producer.send_signal(signal.SIGTERM)
            consumer.send_signal(signal.SIGTERM)
            assert producer.wait(15) == 0 and consumer.wait(15) == 0
    finally:
        webhook.stop()

    calls = produced.labelled("stockmon_api_calls_total", "outcome")
    assert calls["throttled"] == 1 and calls["error"] == 1 and calls["timeout"] == 1
    assert calls["ok"] >= 13  # 12 IBM and 1 MSFT with news, then calls that bring nothing new
    assert calls["ok"] + 3 <= len(standin.requests)  # the scrape may come while a call is on its way
    assert produced.value("stockmon_market_open") == 1  # POLL_HOURS=always
    assert produced.value("stockmon_api_calls_left", window="day") == float("inf")  # REQUESTS_PER_DAY=0
    assert 0 <= produced.value("stockmon_api_calls_left", window="minute") <= 600
    assert produced.value("stockmon_messages_unacknowledged") == 0
    assert produced.value("stockmon_api_calls_in_flight") in (0, 1)
    assert set(produced.labelled("stockmon_quote_age_seconds", "symbol")) == {"IBM", "MSFT"}
    assert produced.families["stockmon_api_calls"].type == "counter"
    assert produced.value("process_resident_memory_bytes") > 0

    assert stored.value("stockmon_rows_stored_total") == 13
    assert stored.value("stockmon_duplicates_skipped_total") == 1
    rejected = stored.labelled("stockmon_messages_rejected_total", "reason")
    assert set(rejected) == {"not_utf8", "not_json", "tombstone", "empty", "not_object", "version", "future",
                             "undecodable", "missing", "invalid"}  # every reason, 0 until one happens
    assert {reason: count for reason, count in rejected.items() if count} == {
        "not_json": 1, "not_utf8": 1, "not_object": 1, "missing": 1}
    lag = stored.labelled("stockmon_consumer_lag", "partition")
    assert set(lag) == {"0", "1", "2"} and set(lag.values()) == {0}
    assert stored.value("stockmon_batch_messages_count") >= 1
    assert stored.value("stockmon_batch_messages_sum") == 18
    assert stored.value("stockmon_batch_duration_seconds_count") == stored.value("stockmon_batch_messages_count")
    assert stored.value("stockmon_ingest_latency_seconds_count") == 18
    assert stored.value("stockmon_ingest_latency_seconds_bucket", le="+Inf") == 18
    assert stored.labelled("stockmon_alerts_fired_total", "kind") == {"move": 0, "level": 1, "average": 0, "gap": 0,
                                                                      "volume": 0}
    assert stored.value("stockmon_alerts_published_total") == 1
    assert stored.value("stockmon_alerts_unpublished") == 0
    [(channel, delivered)] = stored.labelled("stockmon_notifications_delivered_total", "channel").items()
    assert delivered == 1 and len(channel) == 16  # the channel's digest, never its URL
    assert stored.labelled("stockmon_notification_backlog", "channel") == {channel: 0}
    assert stored.value("stockmon_database_size_bytes") > 0
    assert 0 <= stored.value("stockmon_last_commit_age_seconds") < 60
    assert len(webhook.received) == 1

    (producer_live, consumer_live), (producer_ready, consumer_ready) = answers["/healthz"], answers["/readyz"]
    assert producer_live[0] == consumer_live[0] == 200 and producer_live[1]["status"] == "ok"
    assert producer_ready[0] == 200 and producer_ready[1]["status"] == "ready"
    assert set(producer_ready[1]["checks"]) == {"main_loop", "kafka", "state_file"}
    assert producer_ready[1]["state"] == {"polling_hours": "always open (POLL_HOURS=always)",
                                          "daily_budget": "no daily limit"}
    assert consumer_ready[0] == 200 and set(consumer_ready[1]["checks"]) == {"main_loop", "kafka", "partitions",
                                                                            "database"}
    assert consumer_ready[1]["checks"]["partitions"] == {"ok": True, "detail": f"3 partition(s) of {topic}: 0, 1, 2"}

    everything = "\n".join([produced.text, stored.text, json.dumps(answers), producer_log.read_text(),
                            consumer_log.read_text()])
    assert TEST_API_KEY not in everything and "h" * 24 not in everything
    assert "Traceback" not in everything


def a_published_value(broker: Broker, topic: str) -> bytes:
    """One message the producer published (to send again as a duplicate)."""
    return topic_values(broker, topic)[0]


def test_readyz_turns_503_naming_kafka_when_the_broker_goes_and_200_when_it_is_back(
        restartable_broker, topic: str, standin: AlphaVantageStandIn, tmp_path: Path) -> None:
    broker = Broker(restartable_broker.bootstrap_servers, restartable_broker)
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(1000))
    env = pipeline_env(broker, topic, standin, tmp_path / "stocks.db", METRICS_ADDRESS="127.0.0.1:0",
                       REQUESTS_PER_MINUTE="120")
    producer_log, consumer_log = tmp_path / "producer.log", tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=consumer_log)), \
            running(start_script("producer.py", env=env, log_path=producer_log)):
        urls = {"producer": listener_url(producer_log), "consumer": listener_url(consumer_log)}
        for name, url in urls.items():
            wait_until(lambda url=url: health(url, "/readyz")[0] == 200, 60, f"{name} never became ready")
        restartable_broker.stop()
        try:
            stopped = time.monotonic()
            for name, url in urls.items():
                wait_until(lambda url=url: health(url, "/readyz")[0] == 503, 15 - (time.monotonic() - stopped),
                           f"{name} still ready 15 s after the broker stopped")
                answer = health(url, "/readyz")[1]
                assert answer["status"] == "unready" and answer["checks"]["kafka"]["ok"] is False
                assert "Kafka" in answer["checks"]["kafka"]["reason"]
                assert health(url, "/healthz")[0] == 200  # alive: waiting for the broker is its work now
        finally:
            restartable_broker.start()
        for name, url in urls.items():
            wait_until(lambda url=url: health(url, "/readyz")[0] == 200, 90, f"{name} not ready again")


def test_a_wider_address_needs_a_token_and_a_taken_port_exits_2(tmp_path: Path) -> None:
    dead = Broker("127.0.0.1:1")
    env = pipeline_env(dead, "unused", AlphaVantageStandIn(), tmp_path / "stocks.db", METRICS_ADDRESS="0.0.0.0:0")
    for script in ("producer.py", "consumer.py"):
        refused = run_script(script, env=env, timeout=30)
        assert refused.returncode == 2
        assert refused.stderr.strip().endswith("METRICS_TOKEN: must be set when METRICS_ADDRESS is 0.0.0.0, which "
                                               "other machines can reach (or bind 127.0.0.1)")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for script in ("producer.py", "consumer.py"):
            taken = run_script(script, env={**env, "METRICS_ADDRESS": str(port)}, timeout=30)
            assert taken.returncode == 2
            assert taken.stderr.strip().splitlines()[-1].endswith(
                f"METRICS_ADDRESS: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_the_token_guards_every_path_before_kafka_is_even_there(tmp_path: Path) -> None:
    env = pipeline_env(Broker("127.0.0.1:1"), "unused", AlphaVantageStandIn(), tmp_path / "stocks.db",
                       METRICS_ADDRESS="0.0.0.0:0", METRICS_TOKEN=TOKEN)
    log_path = tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        url = listener_url(log_path).replace("0.0.0.0", "127.0.0.1")
        assert ", bearer token required" in log_path.read_text()
        for path in ("/metrics", "/healthz", "/readyz"):
            status, body = get(f"{url}{path}")
            assert status == 401 and TOKEN not in body
        assert scrape(url, TOKEN).value("stockmon_rows_stored_total") == 0
        status, answer = health(url, "/readyz", TOKEN)
        assert status == 503 and answer["checks"]["kafka"]["ok"] is False
        assert answer["checks"]["kafka"]["reason"].startswith("Kafka is not reachable (127.0.0.1:1: ")
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(15) == 0
    assert TOKEN not in log_path.read_text()


def test_log_format_json_writes_one_object_per_line(kafka_broker: Broker, topic: str, standin: AlphaVantageStandIn,
                                                   tmp_path: Path) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", LOG_FORMAT="json")
    produced = run_script("producer.py", "--once", env=env)
    consumed = run_script("consumer.py", "--idle-exit", "2", env=env)
    assert produced.returncode == consumed.returncode == 0, produced.stderr + consumed.stderr
    lines = [json.loads(line) for line in produced.stderr.splitlines() + consumed.stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [published] = [line for line in lines if line["message"].startswith("IBM: published 1 new quote(s)")]
    assert (published["level"], published["logger"], published["symbol"], published["count"]) == (
        "INFO", "producer", "IBM", 1)
    [stored] = [line for line in lines if line["message"].startswith("stored 1 new quote(s)")]
    assert (stored["logger"], stored["count"]) == ("consumer", 1)

    # The one-line error a script ends with is JSON too.
    failed = run_script("producer.py", "--once", "--kafka-wait", "1",
                        env={**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, timeout=60)
    assert failed.returncode == 1
    last = json.loads(failed.stderr.splitlines()[-1])
    assert (last["level"], last["logger"]) == ("ERROR", "producer")
    assert last["message"].startswith("error: Kafka is not reachable at 127.0.0.1:1 (")
    assert TEST_API_KEY not in produced.stderr + consumed.stderr + failed.stderr


def test_the_producer_summarises_its_calls_under_load(kafka_broker: Broker, topic: str,
                                                     standin: AlphaVantageStandIn, tmp_path: Path) -> None:
    symbols = [f"S{index}" for index in range(20)]
    for symbol in symbols:
        body = recorded("global_quote_IBM.json").body.replace(b'"IBM"', f'"{symbol}"'.encode())
        standin.script("GLOBAL_QUOTE", symbol, Answer(body))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", STOCK_SYMBOLS=",".join(symbols),
                       REQUESTS_PER_MINUTE="6000", REQUESTS_IN_FLIGHT="4")
    ran = run_script("producer.py", "--once", env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    info = [line for line in ran.stderr.splitlines() if " INFO producer: " in line]
    per_call = [line for line in info if ": published 1 new quote(s)" in line]
    summaries = [line for line in info if "new quote(s) of" in line]
    assert summaries and len(per_call) < 20
    published = sum(int(line.split("published ")[1].split()[0]) for line in summaries) + len(per_call)
    assert published == 20
    assert "symbol(s) in" in summaries[0] and summaries[0].split(" over ")[1].endswith(" s")

