"""--scheduler: the argument, and what needs no cluster (docs/design.md, 'CLI')."""

from __future__ import annotations

import subprocess
import sys

import pytest

from linkeval import parallel
from linkeval.cli import _parser
from linkeval.errors import LinkevalError


@pytest.mark.parametrize("command", ["clean", "report", "run", "demo"])
def test_scheduler_is_an_option_of_the_commands_that_run_jobs(command):
    config = [] if command == "demo" else ["--config", "study.yaml"]
    args = _parser().parse_args([command, *config, "--scheduler", "tcp://host:8786"])
    assert args.scheduler == "tcp://host:8786" and args.jobs is None
    assert _parser().parse_args([command, *config]).scheduler is None


def test_jobs_and_scheduler_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["report", "--config", "x", "--jobs", "2", "--scheduler", "tcp://h:1"])
    assert info.value.code == 2
    assert "not allowed with argument --jobs" in capsys.readouterr().err


def test_importing_linkeval_does_not_import_dask():
    code = "import sys, linkeval, linkeval.cli; print(sorted({'dask', 'distributed'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


def test_a_malformed_address_is_one_error_line():
    with pytest.raises(LinkevalError) as info:
        parallel.connect("no-port")
    assert str(info.value) == (
        "no-port: cannot reach the Dask scheduler (missing port number in address 'no-port'); "
        "start one with `dask scheduler` or drop --scheduler"
    )


def test_the_key_sent_to_a_worker_is_never_shown():
    hidden = parallel.Hidden(b"the-study-key")
    assert "the-study-key" not in repr(hidden) and "the-study-key" not in str([hidden])
    assert hidden.value == b"the-study-key"
