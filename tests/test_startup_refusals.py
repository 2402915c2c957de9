"""A server that cannot count across its workers does not start, once: an unusable
``PROMDRIFT_MULTIPROC_DIR`` (missing, a file, under a file, not writable), or several
workers without one, stops gunicorn (promdrift's configuration with sync, gthread and
uvicorn workers, checked in the master; without it, in the workers) and uvicorn (its command
line, checked in the workers; ``python -m promdrift.instrumentation.uvicorn`` and its
``run``, checked in the parent) with one error line naming the directory and the fix,
instead of starting workers again forever. Real servers on 127.0.0.1, each waited for at
most 90 s (``served_scenario.run_refused``)."""

from __future__ import annotations

import os
import stat
import sys
import tempfile

import pytest

from promdrift.instrumentation.counting.multiprocess import ENV, STARTUP_FAILURE

from served_scenario import (APPS, control_socket_flag, free_port, run_refused, server_env,
                             uvicorn_argv)

pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

UVICORN_WORKER = "uvicorn.workers.UvicornWorker"
LAUNCHER = "promdrift.instrumentation.uvicorn"


def unwritable_directory(tmp_path):
    """A directory this process cannot create files in (root writes anywhere but in a
    read-only file system such as /sys), or ``None``."""
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir()
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return str(d)
    try:
        fd, probe = tempfile.mkstemp(dir="/sys/kernel")
    except OSError:
        return "/sys/kernel"
    os.close(fd)
    os.unlink(probe)
    return None


#: kind of unusable directory -> the words of the error that say what is wrong and the fix
KINDS = {
    "missing": ("does not exist", "mkdir -p"),
    "a file": ("is not a directory", "set PROMDRIFT_MULTIPROC_DIR to an empty, writable"),
    "under a file": ("cannot be created", "is a file, not a directory"),
    "not writable": ("is not writable by this process", "make it writable"),
}


def unusable(kind, tmp_path):
    if kind == "missing":
        return str(tmp_path / "missing")
    if kind == "not writable":
        path = unwritable_directory(tmp_path)
        if path is None:
            pytest.skip("no directory this process cannot write to")
        return path
    f = tmp_path / "file"
    f.write_text("not a directory")
    return str(f) if kind == "a file" else str(f / "counts")


def said(lines, text):
    """The output lines that contain ``text``."""
    return [line for line in lines if text in line]


def assert_said_once(lines, *words):
    """Exactly one output line holds all of ``words``, and no traceback was printed."""
    hits = [line for line in lines if all(w in line for w in words)]
    assert len(hits) == 1, "\n".join(lines)
    assert not said(lines, "Traceback"), "\n".join(lines)
    return hits[0]


def gunicorn_argv(port, worker_class, *options, app="served:create_flask()", workers=2):
    return [sys.executable, "-m", "gunicorn", *options, "--workers", str(workers), "--bind",
            f"127.0.0.1:{port}", "--chdir", APPS, "-k", worker_class, *control_socket_flag(),
            app]


def app_for(worker_class):
    return "served:create_asgi()" if worker_class == UVICORN_WORKER else "served:create_flask()"


CONFIG = ("-c", "python:promdrift.instrumentation.gunicorn")


# ------------------------------------------------------------------------------ gunicorn

@pytest.mark.parametrize("kind,worker_class", [(k, "sync") for k in KINDS] + [
    ("missing", "gthread"), ("missing", UVICORN_WORKER)])
def test_gunicorn_config_refuses_an_unusable_directory_before_any_worker(
        kind, worker_class, baseline_path, tmp_path):
    directory = unusable(kind, tmp_path)
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    code, lines = run_refused(gunicorn_argv(free_port(), worker_class, *CONFIG,
                                            app=app_for(worker_class)), env)
    assert code == STARTUP_FAILURE, lines
    line = assert_said_once(lines, f"{ENV}={directory!r}", *KINDS[kind])
    assert "Reason:" in line  # gunicorn's halt
    assert not said(lines, "Booting worker")


@pytest.mark.parametrize("worker_class", ["sync", "gthread", UVICORN_WORKER])
def test_gunicorn_config_refuses_several_workers_without_a_directory(
        worker_class, baseline_path, tmp_path):
    env = server_env(baseline_path, str(tmp_path / "capture"))
    code, lines = run_refused(gunicorn_argv(free_port(), worker_class, *CONFIG,
                                            app=app_for(worker_class)), env)
    assert code == STARTUP_FAILURE, lines
    assert_said_once(lines, f"{ENV} is not set: with 2 workers", "Set it to an empty")
    assert not said(lines, "Booting worker")


@pytest.mark.parametrize("worker_class", ["sync", UVICORN_WORKER])
def test_gunicorn_worker_refuses_without_the_configuration(worker_class, baseline_path,
                                                           tmp_path):
    """Without promdrift's configuration the worker checks, and exits with status 3, which
    gunicorn answers by stopping ("Worker failed to boot"). One worker: when several exit
    at the same instant, gunicorn may raise its own HaltServer again while it stops, print
    that traceback and exit 1 (docs/multiprocess.md); the configuration checks first."""
    directory = str(tmp_path / "missing")
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    code, lines = run_refused(gunicorn_argv(free_port(), worker_class, workers=1,
                                            app=app_for(worker_class)), env)
    assert code == STARTUP_FAILURE, lines
    assert_said_once(lines, f"{ENV}={directory!r}", "does not exist", "mkdir -p")
    assert said(lines, "exited with code 3") and said(lines, "Worker failed to boot")
    assert len(said(lines, "Booting worker")) == 1  # never started again


def test_gunicorn_preload_refuses_in_the_master(baseline_path, tmp_path):
    directory = str(tmp_path / "missing")
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    code, lines = run_refused(gunicorn_argv(free_port(), "sync", *CONFIG, "--preload"), env)
    assert code == STARTUP_FAILURE, lines
    assert_said_once(lines, f"{ENV}={directory!r}", "does not exist")
    assert not said(lines, "Booting worker")


# ------------------------------------------------------------------------------- uvicorn

def test_uvicorn_workers_refuse_an_unusable_directory_once(baseline_path, tmp_path):
    """``uvicorn --workers 2``: uvicorn's parent runs no code of the app, so the workers
    check; each exits with status 3 ("failed to start", which uvicorn logs for that status
    only) and uvicorn stops instead of starting them again ("died")."""
    directory = str(tmp_path / "missing")
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    code, lines = run_refused(uvicorn_argv(free_port(), "--workers", "2"), env)
    assert_said_once(lines, f"{ENV}={directory!r}", "does not exist", "mkdir -p")
    assert said(lines, "failed to start, stopping the parent process")
    assert not said(lines, "died")
    assert code == 0  # uvicorn's parent, after a worker failed to start: see the launcher


def test_uvicorn_workers_refuse_several_workers_without_a_directory_once(
        baseline_path, tmp_path):
    env = server_env(baseline_path, str(tmp_path / "capture"))
    code, lines = run_refused(uvicorn_argv(free_port(), "--workers", "2"), env)
    assert_said_once(lines, f"{ENV} is not set: with 2 workers")
    assert said(lines, "failed to start, stopping the parent process")
    assert not said(lines, "died")
    assert len(said(lines, "Waiting for application startup")) <= 2
    assert code == 0  # uvicorn's, as above


@pytest.mark.parametrize("kind", list(KINDS) + ["no directory"])
def test_the_uvicorn_launcher_refuses_before_any_worker(kind, baseline_path, tmp_path):
    directory = "" if kind == "no directory" else unusable(kind, tmp_path)
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    code, lines = run_refused(uvicorn_argv(free_port(), "--workers", "2", module=LAUNCHER), env)
    assert code == STARTUP_FAILURE, lines
    if directory:
        line = assert_said_once(lines, f"{ENV}={directory!r}", *KINDS[kind])
    else:
        line = assert_said_once(lines, f"{ENV} is not set: with 2 workers")
    assert line.startswith("Error: ")
    assert not said(lines, "Started parent process") and not said(lines, "Uvicorn running")


def test_the_launchers_run_refuses_before_any_worker(baseline_path, tmp_path):
    env = {**server_env(baseline_path, str(tmp_path / "capture")), "WEB_CONCURRENCY": "3"}
    script = (f"from {LAUNCHER} import run\n"
              f"run('served:create_asgi', factory=True, app_dir={APPS!r}, "
              f"host='127.0.0.1', port={free_port()})\n")
    code, lines = run_refused([sys.executable, "-c", script], env)
    assert code == STARTUP_FAILURE, lines
    assert_said_once(lines, f"{ENV} is not set: with 3 workers")
    assert not said(lines, "Started parent process")


def test_uvicorn_run_from_the_apps_module_fails_in_the_parent(baseline_path, tmp_path):
    """``uvicorn.run("main:app", workers=2)`` under ``if __name__ == "__main__"`` of the
    app's module: the parent builds the app (and its monitor) before uvicorn starts, so a bad
    directory is the ``MultiprocessDirError`` there, once, and no worker starts."""
    directory = str(tmp_path / "missing")
    env = server_env(baseline_path, str(tmp_path / "capture"), directory)
    (tmp_path / "main.py").write_text(
        "import uvicorn\n"
        "import served\n"
        "app = served.create_asgi()\n"
        "if __name__ == '__main__':\n"
        f"    uvicorn.run('main:app', workers=2, host='127.0.0.1', port={free_port()})\n")
    code, lines = run_refused([sys.executable, str(tmp_path / "main.py")], env)
    assert code == 1, lines
    line = said(lines, f"{ENV}={directory!r}")
    assert len(line) == 1 and line[0].startswith(
        "promdrift.instrumentation.counting.multiprocess.MultiprocessDirError: "), lines
    assert not said(lines, "Started parent process")
