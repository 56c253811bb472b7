"""One reader of the items envelope: a numbered page and a scroll batch refuse the same bodies.

The bodies here cannot come from the bundled server (it answers as Intercom
does), so the readers are given them directly, as parsed JSON.
"""

from __future__ import annotations

from typing import Any

import pytest

from asyncfetch import ResponseFormatError
from asyncfetch._intercom._pages import read_page
from asyncfetch._intercom._scroll import _read as read_scroll_batch

URL = "http://127.0.0.1:1/users"
MALFORMED: list[Any] = [
    None,
    [],
    "users",
    {},
    {"users": None},
    {"users": {"id": "1"}},
    {"users": [{"id": "1"}, "2"]},
    {"users": [{"id": "1"}, None]},
    {"users": [[{"id": "1"}]]},
    {"people": [{"id": "1"}]},
]


@pytest.mark.parametrize("body", MALFORMED)
def test_a_page_and_a_scroll_batch_refuse_the_same_envelopes(body: Any) -> None:
    with pytest.raises(ResponseFormatError, match="'users' list of objects") as page_error:
        read_page(body, items_key="users", number=3, url=URL)
    assert page_error.value.page == 3
    scroll_body = {**body, "scroll_param": "p"} if isinstance(body, dict) else body
    with pytest.raises(ResponseFormatError, match="'users' list of objects") as batch_error:
        read_scroll_batch(scroll_body, items_key="users", url=URL)
    assert batch_error.value.page is None
    assert page_error.value.url == batch_error.value.url == URL


def test_both_read_the_same_items_of_a_good_envelope() -> None:
    users = [{"id": "1"}, {"id": "2", "type": "contact"}]
    page = read_page({"type": "user.list", "users": users}, items_key="users", number=1, url=URL)
    items, param = read_scroll_batch(
        {"type": "user.list", "users": users, "scroll_param": "p"}, items_key="users", url=URL
    )
    assert page.items == items == users
    assert param == "p"
    empty, _ = read_scroll_batch({"users": [], "scroll_param": "p"}, items_key="users", url=URL)
    assert empty == []


@pytest.mark.parametrize("param", [None, 7, ["p"]])
def test_a_scroll_batch_without_a_scroll_param_string_is_refused(param: Any) -> None:
    body: dict[str, Any] = {"users": [{"id": "1"}]}
    if param is not None:
        body["scroll_param"] = param
    with pytest.raises(ResponseFormatError, match="scroll_param"):
        read_scroll_batch(body, items_key="users", url=URL)
