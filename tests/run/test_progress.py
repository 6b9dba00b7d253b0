"""What the user sees while a run goes: plain lines for logs, JSON events for programs."""
from __future__ import annotations

import io
import json

from swiftkit.logparse import Progress, parse_line
from swiftkit.run.progress import Events, Plain, duration, make_reporter

LINE = ("Train:  12%|#| 10/80 [00:01<00:08,  8.19it/s] {'loss': '6.609', 'grad_norm': '0.7679', "
        "'learning_rate': '0.009619', 'token_acc': '0.1799', 'epoch': '10', 'global_step/max_steps': '10/80', "
        "'elapsed_time': '2s', 'remaining_time': '11s', 'train_speed(s/it)': '0.1594'}")


def progress():
    return next(e for e in parse_line(LINE) if isinstance(e, Progress))


def test_plain_line_for_logs():
    out = io.StringIO()
    rep = Plain(out, every=0)
    rep.event(progress())
    assert out.getvalue().strip() == "step 10/80  epoch 10.00  loss 6.609  lr 0.00962  s/it 0.159  eta 11s"


def test_plain_is_rate_limited_but_keeps_the_last():
    out = io.StringIO()
    rep = Plain(out, every=3600)
    rep.event(progress())
    rep.event(progress())
    rep.end_phase()
    assert out.getvalue().count("step 10/80") == 2  # the first at once, the last one when the attempt ends
    rep.close()
    assert out.getvalue().count("step 10/80") == 2


def test_events_are_json_lines():
    out = io.StringIO()
    rep = Events(out)
    rep.event(progress())
    rep.say("hello")
    first, second = [json.loads(x) for x in out.getvalue().splitlines()]
    assert first["event"] == "Progress" and first["step"] == 10 and first["loss"] == 6.609
    assert second == {"event": "message", "text": "hello"}


def test_not_a_terminal_gets_plain_lines():
    assert isinstance(make_reporter(stream=io.StringIO()), Plain)


def test_duration():
    assert [duration(s) for s in (5, 75, 3725)] == ["5s", "1m15s", "1h02m"]


def test_bar_stops_between_attempts():
    from swiftkit.run.progress import Bar

    out = io.StringIO()
    bar = Bar(out)
    bar.event(progress())
    bar.end_phase()
    assert bar.task is None
    bar.event(progress())  # a retry draws a new bar
    assert bar.task is not None
    bar.close()
