"""SIGUSR1 makes a running script write every thread's stack to its log and carry on; a test that fails
with a script still running prints those stacks and the end of the log."""

from __future__ import annotations

import re
import signal
import time

import pytest

from alert_feed import pipeline_env_without_kafka, wait_for
from conftest import running, start_script
from streaming.local_broker import free_port

pytestmark = pytest.mark.slow


def test_sigusr1_writes_the_stacks_to_the_log_and_the_script_carries_on(tmp_path):
    env = pipeline_env_without_kafka(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    log_path = tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        wait_for(lambda: "is not reachable" in log_path.read_text(), what=lambda: log_path.read_text())
        consumer.send_signal(signal.SIGUSR1)
        wait_for(lambda: "Current thread" in log_path.read_text(), timeout=10, what=lambda: log_path.read_text())
        time.sleep(0.5)
        assert consumer.poll() is None, log_path.read_text()  # still running
        log = log_path.read_text()
        assert re.search(r'File ".*consumer\.py", line \d+ in consume_until_stopped', log), log
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(15) == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def test_a_failed_test_prints_the_stacks_of_a_script_still_running(tmp_path, capsys):
    env = pipeline_env_without_kafka(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    log_path = tmp_path / "producer.log"
    with pytest.raises(AssertionError, match="the stop never came"), \
            running(start_script("producer.py", env=env, log_path=log_path)):
        wait_for(lambda: "is not reachable" in log_path.read_text(), what=lambda: log_path.read_text())
        raise AssertionError("the stop never came")
    out = capsys.readouterr().out
    assert re.search(r"^--- \S*producer\.py \(pid \d+\) was still running; its stacks and the last \d+ lines of "
                     r"producer\.log:$", out, re.MULTILINE), out
    assert re.search(r'File ".*producer\.py", line \d+ in ', out), out
