"""The package's public names: every one resolves, and importing the package is light."""

import subprocess
import sys

import tf_signsal


def test_every_public_name_resolves():
    for name in tf_signsal.__all__:
        assert getattr(tf_signsal, name) is not None, name
    assert tf_signsal.SignedSaliency.__module__ == "tf_signsal.maps"
    assert tf_signsal.METHODS == ("standard", "positive", "negative", "active", "inactive")


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, tf_signsal; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_unknown_names_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'SignedSaliencyy'"):
        tf_signsal.SignedSaliencyy  # noqa: B018
