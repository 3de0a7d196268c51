"""Caddy's /config path semantics on plain data (messages checked against caddy 2.6.2)."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.admin.configtree import ConfigPathError, access, index_ids

LISTEN = "/config/apps/http/servers/srv0/listen"


def base():
    return {"apps": {"http": {"servers": {"srv0": {"listen": ["a"], "routes": []}}}}}


def listen_of(config):
    return config["apps"]["http"]["servers"]["srv0"]["listen"]


def test_get_whole_config_and_missing_key():
    config = base()
    assert access(config, "GET", "/config/")[1] == config
    assert access(config, "GET", "/config/nope")[1] is None
    assert access(config, "GET", LISTEN + "/0")[1] == "a"


def test_array_semantics_match_caddy():
    config, _ = access(base(), "POST", LISTEN, "b")
    assert listen_of(config) == ["a", "b"]
    config, _ = access(config, "POST", LISTEN + "/...", ["c", "d"])
    assert listen_of(config) == ["a", "b", "c", "d"]
    config, _ = access(config, "PUT", LISTEN + "/0", "z")
    assert listen_of(config) == ["z", "a", "b", "c", "d"]
    config, _ = access(config, "PUT", LISTEN + "/5", "end")
    assert listen_of(config)[-1] == "end"
    config, _ = access(config, "PATCH", LISTEN + "/0", "y")
    assert listen_of(config)[0] == "y"
    config, _ = access(config, "DELETE", LISTEN + "/0")
    assert listen_of(config) == ["a", "b", "c", "d", "end"]


def test_object_semantics_match_caddy():
    path = "/config/apps/http/servers/srv0/idle_timeout"
    config, _ = access(base(), "PUT", path, "5s")
    with pytest.raises(ConfigPathError, match=r"\[" + path + r"\] key already exists: idle"):
        access(config, "PUT", path, "5s")
    config, _ = access(config, "POST", path, "6s")
    config, _ = access(config, "PATCH", path, "7s")
    assert access(config, "GET", path)[1] == "7s"
    config, _ = access(config, "DELETE", path)
    assert "idle_timeout" not in config["apps"]["http"]["servers"]["srv0"]
    assert access(config, "DELETE", path)[0] == config  # deleting a missing key is fine
    with pytest.raises(ConfigPathError, match="key does not exist: idle_timeout"):
        access(config, "PATCH", path, "1s")


def test_put_creates_missing_objects():
    config, _ = access({}, "PUT", "/config/apps/http/servers/x", {"listen": [":1"]})
    assert config == {"apps": {"http": {"servers": {"x": {"listen": [":1"]}}}}}
    assert access(None, "POST", "/config/", {"a": 1})[0] == {"a": 1}


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("PUT", LISTEN + "/9", f"[{LISTEN}/9] array index out of bounds: 9"),
        ("PATCH", LISTEN + "/1", f"[{LISTEN}/1] array index out of bounds: 1"),
        ("DELETE", LISTEN + "/-1", f"[{LISTEN}/-1] array index out of bounds: -1"),
        ("GET", LISTEN + "/x", f"[{LISTEN}/x] invalid array index 'x'"),
        ("POST", "/config/a/b/c", "invalid traversal path at: config/a/b"),
        ("POST", LISTEN + "/0/x", "invalid traversal path at: config/apps/http/servers/srv0"),
        ("POST", "/", "no traversable path"),
    ],
)
def test_errors_carry_caddys_messages(method, path, message):
    with pytest.raises(ConfigPathError) as caught:
        access(base(), method, path, "v")
    assert str(caught.value).startswith(message)


def test_ellipsis_needs_an_array():
    with pytest.raises(ConfigPathError, match="final element is not an array"):
        access(base(), "POST", LISTEN + "/...", "x")


def test_ids_index_paths():
    config = {"apps": {"http": {"servers": {"s": {"routes": [{"@id": "r"}, {"@id": 7}]}}}}}
    assert index_ids(config) == {
        "r": "/config/apps/http/servers/s/routes/0",
        "7": "/config/apps/http/servers/s/routes/1",
    }
    with pytest.raises(ConfigPathError, match="@id field must be a string or number"):
        index_ids({"a": {"@id": ["x"]}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.lists(json_values, max_size=5), json_values, st.data())
def test_put_then_delete_restores_and_never_mutates_input(items, value, data):
    config = {"list": items}
    snapshot = copy.deepcopy(config)
    index = data.draw(st.integers(min_value=0, max_value=len(items)))
    inserted, _ = access(config, "PUT", f"/config/list/{index}", value)
    assert config == snapshot
    assert inserted["list"][index] == value
    assert access(inserted, "GET", f"/config/list/{index}")[1] == value
    restored, _ = access(inserted, "DELETE", f"/config/list/{index}")
    assert restored == snapshot


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=4).filter(lambda k: "/" not in k and k != "..."),
        json_values,
        max_size=4,
    ),
    st.text(min_size=1, max_size=4).filter(lambda k: "/" not in k and k != "..."),
    json_values,
)
def test_object_put_patch_delete_laws(obj, key, value):
    config = {"obj": obj}
    path = f"/config/obj/{key}"
    if key in obj:
        with pytest.raises(ConfigPathError):
            access(config, "PUT", path, value)
        patched, _ = access(config, "PATCH", path, value)
        assert patched["obj"][key] == value
    else:
        with pytest.raises(ConfigPathError):
            access(config, "PATCH", path, value)
        created, _ = access(config, "PUT", path, value)
        assert created["obj"][key] == value
        assert access(created, "DELETE", path)[0] == config
