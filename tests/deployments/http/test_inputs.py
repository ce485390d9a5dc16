"""Request parsing, without Ray."""

import base64
from urllib.parse import quote

import pytest

from deployments.http.inputs import decode_base64_body, parse_bool, parse_confidence, raw_spec
from pipelines.decode import RawSpec
from pipelines.errors import EmptyUploadError, InvalidParameterError

DATA = bytes(range(256)) * 3  # every byte value: '+' and '/' appear in its base64


@pytest.mark.parametrize(
    "body",
    [
        base64.b64encode(DATA),
        base64.encodebytes(DATA),  # `base64 FILE` wraps lines at 76 characters
        quote(base64.b64encode(DATA).decode()).encode(),  # form-urlencoded
        b"data:image/png;base64," + base64.b64encode(DATA),
        base64.urlsafe_b64encode(DATA).rstrip(b"="),
    ],
)
def test_base64_bodies_in_every_shape_clients_send(body):
    assert decode_base64_body(body) == DATA


@pytest.mark.parametrize("body,error", [(b"", EmptyUploadError), (b"  \n", EmptyUploadError), (b"not base64!!", InvalidParameterError)])
def test_bad_base64_bodies(body, error):
    with pytest.raises(error):
        decode_base64_body(body)


def test_raw_spec_from_the_query():
    assert raw_spec({}) is None
    assert raw_spec({"width": "4", "height": "3"}) == RawSpec(4, 3, "rgb8")
    assert raw_spec({"width": "4", "height": "3", "format": "L8"}) == RawSpec(4, 3, "l8")
    assert raw_spec({"width": "4", "height": "2", "bayer": ""}) == RawSpec(4, 2, "bayer_rg8")
    for query in (
        {"width": "4"},
        {"width": "0", "height": "2"},
        {"width": "x", "height": "2"},
        {"width": "4", "height": "2", "format": "rgb16"},
    ):
        with pytest.raises(InvalidParameterError):
            raw_spec(query)


def test_confidence_and_flags():
    assert parse_confidence(None) == 0.5 and parse_confidence("0") == 0.0 and parse_confidence("100") == 1.0
    for bad in ("-1", "101", "nan", "high"):
        with pytest.raises(InvalidParameterError):
            parse_confidence(bad)
    assert parse_bool("gate", "false", True) is False and parse_bool("gate", None, True) is True
    with pytest.raises(InvalidParameterError):
        parse_bool("gate", "maybe", True)
