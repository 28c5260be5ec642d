"""``aiguillage operator``'s identity among kopf peers works under any UID."""

from __future__ import annotations

import getpass
import os

import pytest

from aiguillage.operator.main import identity

NO_PASSWD_UID = 54321  # a UID with no /etc/passwd entry, as OpenShift gives pods


def test_identity_is_the_pod_name_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_ID", raising=False)
    monkeypatch.setenv("POD_NAME", "aiguillage-operator-7d9f-x2x4q")
    assert identity() == "aiguillage-operator-7d9f-x2x4q"


def test_two_runs_outside_a_pod_get_different_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_ID", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    assert identity() != identity()


def test_identity_under_a_uid_without_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What getpass.getuser() does there (kopf's default identity calls it): KeyError.

    The operator image runs under such a UID; tests/e2e/test_images.py starts it for real.
    """

    def no_passwd_entry() -> str:
        raise KeyError(f"getpwuid(): uid not found: {NO_PASSWD_UID}")

    monkeypatch.delenv("POD_ID", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    monkeypatch.setattr(os, "getuid", lambda: NO_PASSWD_UID)
    assert identity().startswith(f"uid-{NO_PASSWD_UID}@")
