"""scripts/fetch-engines: which Debian mirror it reads from apt's configuration, and its stamp.

The fetch itself (apt-get, dpkg) runs in ``make test`` before pytest; these tests check the
parts that decide what it does, on apt configurations written here.
"""

import importlib.machinery
import importlib.util
import json
import os
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "fetch-engines"


def _load():
    loader = importlib.machinery.SourceFileLoader("fetch_engines_under_test", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


fetch = _load()

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _etc(tmp_path, sources=None, sources_list=None, extra=None):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    if sources is not None:
        (etc / "sources.list.d" / "debian.sources").write_text(sources)
    if sources_list is not None:
        (etc / "sources.list").write_text(sources_list)
    for name, text in (extra or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    return str(etc)


def test_the_main_archive_of_a_deb822_configuration(tmp_path):
    etc = _etc(tmp_path, DEB822, extra={
        "nodesource.sources": "Types: deb\nURIs: https://deb.example/node\nSuites: nodistro\n",
        "cloud.list.disabled": "deb http://other.example/apt bookworm main\n"})
    assert fetch.debian_mirror(etc, release="bookworm") == "http://mirror.example/debian"


def test_the_main_archive_of_a_one_line_configuration(tmp_path):
    etc = _etc(tmp_path, sources_list=(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://sec.example/debian-security"
        " bookworm-security main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [ trusted=yes ] http://mirror.example/debian/ bookworm main contrib\n"))
    assert fetch.debian_mirror(etc, release="bookworm") == "http://mirror.example/debian"


def test_a_disabled_stanza_is_not_used(tmp_path):
    etc = _etc(tmp_path, "Enabled: no\n" + DEB822)
    with pytest.raises(fetch.FetchError, match="no apt source for suite 'bookworm'"):
        fetch.debian_mirror(etc, release="bookworm")


def test_no_main_archive_is_a_clear_error(tmp_path):
    etc = _etc(tmp_path, DEB822)
    with pytest.raises(fetch.FetchError, match="no apt source for suite 'trixie'"):
        fetch.debian_mirror(etc, release="trixie")


def test_the_stamp_counts_only_with_every_binary(tmp_path):
    cache = tmp_path / "engines"
    bindir = cache / "root" / "usr" / "bin"
    bindir.mkdir(parents=True)
    stamp = {"suite": "sid", "packages": {p: "1.0" for p in fetch.PACKAGES}}
    (cache / "stamp.json").write_text(json.dumps(stamp))
    names = [n for names in fetch.PACKAGES.values() for n in names]
    for name in names:
        (bindir / name).write_text("#!/bin/sh\n")
        os.chmod(bindir / name, 0o755)
    assert fetch.read_stamp(str(cache)) == stamp
    os.chmod(bindir / names[-1], 0o644)
    assert fetch.read_stamp(str(cache)) is None
