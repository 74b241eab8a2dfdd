"""The package's public names: every one resolves. That importing the package loads no
TensorFlow is checked with the other light modules in test_layers.py."""

import tf_signsal


def test_every_public_name_resolves():
    for name in tf_signsal.__all__:
        assert getattr(tf_signsal, name) is not None, name
    assert tf_signsal.SignedSaliency.__module__ == "tf_signsal.maps"
    assert tf_signsal.METHODS == ("standard", "positive", "negative", "active", "inactive")


def test_unknown_names_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'SignedSaliencyy'"):
        tf_signsal.SignedSaliencyy  # noqa: B018
