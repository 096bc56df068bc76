"""Rendezvous placement of tasks on members: every member agrees, shares are even (or
follow the weights), and a change of members moves only what it must."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from kapa_core.cluster.placement import Member, assign, moves, owner

TASKS = [f"task-{n}" for n in range(3000)]
IDS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=1,
              max_size=12)


def test_no_member_no_owner() -> None:
    assert owner("cpu", []) is None
    assert owner("cpu", [Member("a", weight=0)]) is None


def test_the_same_in_another_process() -> None:
    """No per-process hashing: another interpreter (other PYTHONHASHSEED) agrees."""
    members = [Member(f"m{n}") for n in range(5)]
    here = assign(TASKS[:200], members)
    code = ("import json; from kapa_core.cluster.placement import Member, assign; "
            "print(json.dumps(assign([f'task-{n}' for n in range(200)], "
            "[Member(f'm{n}') for n in range(5)])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == here


@given(st.lists(IDS, min_size=1, max_size=8, unique=True))
@settings(max_examples=60, deadline=None)
def test_order_of_members_does_not_matter(ids: list[str]) -> None:
    members = [Member(i) for i in ids]
    assert assign(TASKS[:300], members) == assign(TASKS[:300], list(reversed(members)))


def test_shares_are_even() -> None:
    members = [Member(f"member-{n}") for n in range(3)]
    counts: dict[str | None, int] = {}
    for who in assign(TASKS, members).values():
        counts[who] = counts.get(who, 0) + 1
    assert set(counts) == {m.id for m in members}
    for count in counts.values():  # 1000 expected; 4.5 standard deviations either way
        assert 880 <= count <= 1120, counts


def test_weights_shape_the_shares() -> None:
    members = [Member("small"), Member("big", weight=3.0)]
    owners = list(assign(TASKS, members).values())
    share = owners.count("big") / len(owners)
    assert 0.72 <= share <= 0.78, share  # 3/4 expected


@given(st.lists(IDS, min_size=2, max_size=8, unique=True), st.data())
@settings(max_examples=60, deadline=None)
def test_a_member_leaving_moves_only_its_own_tasks(ids: list[str], data: st.DataObject
                                                   ) -> None:
    members = [Member(i) for i in ids]
    gone = data.draw(st.sampled_from(ids))
    before = assign(TASKS[:500], members)
    after = assign(TASKS[:500], [m for m in members if m.id != gone])
    moved = moves(before, after)
    assert all(old == gone for old, _new in moved.values())
    assert set(moved) == {t for t, who in before.items() if who == gone}
    assert gone not in after.values()


def test_a_member_joining_takes_a_fair_share_from_everyone() -> None:
    members = [Member(f"member-{n}") for n in range(4)]
    before = assign(TASKS, members)
    after = assign(TASKS, [*members, Member("newcomer")])
    moved = moves(before, after)
    assert all(new == "newcomer" for _old, new in moved.values())
    assert 520 <= len(moved) <= 680, len(moved)  # 3000/5 = 600 expected
    given_up = {old for old, _new in moved.values()}
    assert given_up == {m.id for m in members}
