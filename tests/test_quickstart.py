"""docs/quickstart.md runs as written: its files (the python blocks, each named by its first
line, ``# train.py: ...``) and its commands (the ``sh`` blocks), in a fresh directory, with
one change: the model server's port 8000 becomes a free port (``pip install`` is not run: the
test environment has the packages). ``promdrift trial`` gets
``--until-alerts 1 --duration 100`` so that it stops by itself, and the test asserts that a
drift alert about a drifted column of the wine model arrived.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

from promdrift.exporter.stack import free_port, http_get, wait_until

from conftest import PROMDRIFT, Output, needs_stack, stop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "docs", "quickstart.md")


def blocks() -> Tuple[Dict[str, str], List[str]]:
    """The quickstart's files (name -> code) and its commands, in order."""
    with open(QUICKSTART, encoding="utf-8") as f:
        text = f.read()
    files = {}
    for code in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        name = re.match(r"# (\S+\.py):", code)
        assert name, f"a python block of the quickstart names no file: {code[:60]!r}"
        files[name.group(1)] = code
    commands = [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)
                for line in block.splitlines() if line.strip()]
    return files, commands


def test_the_quickstart_has_its_files_and_commands():
    files, commands = blocks()
    assert set(files) == {"train.py", "serve.py", "send.py"}
    assert commands == ["pip install 'promdrift[flask]' scikit-learn pandas requests",
                        "python train.py", "python serve.py",
                        "promdrift trial --target 127.0.0.1:8000", "python send.py",
                        "python send.py --drift"]


@needs_stack
def test_the_quickstart_fires_an_alert(tmp_path):
    pytest.importorskip("sklearn")
    files, commands = blocks()
    port = free_port()
    for name, code in files.items():
        (tmp_path / name).write_text(code.replace("8000", str(port)))
    python = [c for c in commands if c.startswith("python ")]
    trial_cmd = next(c for c in commands if c.startswith("promdrift trial"))

    def run_python(command: str) -> str:
        out = subprocess.run([sys.executable, *command.split()[1:]], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{command}:\n{out.stderr}"
        return out.stdout

    start = time.monotonic()
    # the trial first (it waits for its target): its Prometheus starts while the model trains
    trial = subprocess.Popen(
        [PROMDRIFT, *trial_cmd.replace("8000", str(port)).split()[1:],
         "--until-alerts", "1", "--duration", "100"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL)
    output = Output(trial)
    server = None
    try:
        assert "13 features" in run_python(python[0])                # python train.py
        with open(tmp_path / "serve.log", "wb") as log:              # python serve.py
            server = subprocess.Popen([sys.executable, "serve.py"], cwd=tmp_path, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/metrics"), 60,
                   what="the quickstart's model server")
        wait_until(lambda: trial.poll() is not None or "targets up" in output.text(), 60,
                   what="the trial's targets up")
        assert trial.poll() is None, output.text()
        assert "models: wine" in output.text()
        assert "sent 500 normal requests" in run_python(python[2])    # python send.py
        assert "sent 500 drifted requests" in run_python(python[3])   # python send.py --drift
        status = trial.wait(timeout=120)
    finally:
        stop(trial)
        if server is not None:
            stop(server)
        output.join()
    text = output.text()
    alerts = [line for line in text.splitlines() if " ALERT " in line]
    assert status == 0, text
    assert len(alerts) >= 1, text
    assert re.search(r"ALERT Promdrift(FeatureDrift|FeaturePSIHigh|PredictionClassDrift) "
                     r"\[warning\] wine/(alcohol|color_intensity|cultivar): ", alerts[0]), text
    # the trial stopped its Prometheus and Alertmanager (by their handles) when it ended
    for url in re.findall(r"(?:Prometheus|Alertmanager) (http://127\.0\.0\.1:\d+)", text):
        with pytest.raises(OSError):
            http_get(url + "/-/ready", timeout=2)
    print(f"quickstart: first alert after {time.monotonic() - start:.0f} s")
