"""Scenario: a 30-turn conversation over three sessions in which the user moves city twice and
changes a preference. Search and working memory put the current facts first; history keeps
every earlier value with its time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from memcube import LifecycleState, MemCube

SESSIONS = [
    (
        datetime(2024, 1, 10, 18, 0, tzinfo=timezone.utc),
        [
            "Hi! I'm Dana. I live in Lisbon.",
            "Nice to meet you, Dana!",
            "I prefer tea over coffee, especially in the morning.",
            "Noted, tea it is.",
            "I work at a bakery near the river.",
            "That sounds lovely.",
            "My sister visited last weekend.",
            "How was it?",
            "Great, we walked along the beach.",
            "Sounds fun.",
        ],
    ),
    (
        datetime(2024, 4, 15, 18, 0, tzinfo=timezone.utc),
        [
            "Big news: I moved to Berlin two weeks ago!",
            "Wow, congratulations on the move!",
            "The winters here are cold, but the city is great.",
            "Stay warm!",
            "I still prefer tea over coffee.",
            "Good to know.",
            "I started a new job at a design studio.",
            "Congrats!",
            "The commute takes 20 minutes by bike.",
            "Nice.",
        ],
    ),
    (
        datetime(2024, 9, 20, 18, 0, tzinfo=timezone.utc),
        [
            "I relocated to Munich last month for the job.",
            "Munich is beautiful in autumn.",
            "These days I prefer coffee to tea, the office machine is great.",
            "Coffee it is then.",
            "My favorite park here is the English Garden.",
            "It's huge.",
            "Can you remind me what I should pack for a weekend trip?",
            "Sure: layers, a rain jacket, and good shoes.",
            "Thanks, that's helpful.",
            "Anytime!",
        ],
    ),
]


def _load(cube: MemCube) -> None:
    n = 0
    for s, (start, lines) in enumerate(SESSIONS):
        messages = []
        for i, text in enumerate(lines):
            messages.append(
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": text,
                    "id": f"D{s + 1}:{i + 1}",
                    "timestamp": (start + timedelta(minutes=i)).isoformat(),
                }
            )
            n += 1
        cube.add_messages(messages, user_id="dana", session_id=f"session-{s + 1}")
    assert n == 30


def test_moves_and_preference_change(cube: MemCube) -> None:
    _load(cube)
    turns = list(cube.items(user_id="dana", filters={"memory_type": "episodic"}))
    assert len(turns) == 30  # every turn kept

    # search: the current facts come first, superseded values are gone
    live = cube.search("Where does the user live?", user_id="dana", k=5)
    assert live[0].item.content == "User lives in Munich"
    assert not {"User lives in Berlin", "User lives in Lisbon"} & {h.item.content for h in live}
    drink = cube.search("Does the user prefer tea or coffee?", user_id="dana", k=5)
    assert drink[0].item.content == "User prefers coffee over tea"
    assert "User prefers tea over coffee" not in {h.item.content for h in drink}

    # working memory: the current value first (the fact, or the turn it was read from: never
    # both), ahead of the chat turns that mention old values
    old_values = {"User lives in Berlin", "User lives in Lisbon", "User prefers tea over coffee"}
    for query, current, stale_word in (
        ("Where do I live?", ("User lives in Munich",), "Berlin"),
        ("Do I drink tea or coffee?", ("User prefers coffee over tea", "I prefer coffee to tea"),
         "tea over coffee"),
    ):  # fmt: skip
        wm = [i.content for i in cube.working_memory(query, user_id="dana", token_budget=300)]
        assert any(c in wm[0] for c in current), wm
        if len(current) == 2:  # the fact and the turn it was read from are never both shown
            assert sum(any(c in w for w in wm) for c in current) == 1, wm
        assert not old_values & set(wm)
        assert all(stale_word not in c for c in wm[:1])

    # history: every earlier value with its time
    home = live[0].item
    hist = cube.history(home.id, user_id="dana")
    assert [(h.content, h.state) for h in hist] == [
        ("User lives in Lisbon", LifecycleState.SUPERSEDED),
        ("User lives in Berlin", LifecycleState.SUPERSEDED),
        ("User lives in Munich", LifecycleState.GENERATED),
    ]
    assert [h.event_time.date().isoformat() for h in hist] == [  # type: ignore[union-attr]
        "2024-01-10",  # said then
        "2024-04-01",  # "two weeks ago" on 15 April
        "2024-08-20",  # "last month" on 20 September
    ]
    assert [h.provenance.message_ids for h in hist] == [["D1:1"], ["D2:1"], ["D3:1"]]
    pref = drink[0].item
    phist = cube.history(pref.id, user_id="dana")
    assert [h.content for h in phist] == [
        "User prefers tea over coffee",
        "User prefers coffee over tea",
    ]
    # the repeated "I still prefer tea" was merged into the first value, with both turns cited
    assert phist[0].provenance.message_ids == ["D1:3", "D2:5"]
    assert phist[0].event_time.date().isoformat() == "2024-01-10"  # type: ignore[union-attr]
    assert phist[1].event_time.date().isoformat() == "2024-09-20"  # type: ignore[union-attr]

    # the stable block for activation memory holds the current profile, not old values
    block = [i.content for i in cube.activation_set("dana")]
    assert "User lives in Munich" in block and "User lives in Berlin" not in block
