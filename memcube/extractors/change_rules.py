"""Rules for changes and endings: "I no longer work at Google", "I moved out of Leeds", "I quit
smoking", "I'm not vegetarian anymore", "Sam and I broke up", "I switched my number to ...";
and for what they end (relationships, bands).

An ending is a fact with the SAME ``subject`` as the fact it ends and a different ``value``
("employer": "not Google"), so the lifecycle supersedes the old fact with it (see
:mod:`memcube.lifecycle`); its content is a complete sentence ("User no longer works at Google").

Example:
    >>> from memcube.extractors.grammar import Ctx
    >>> ctx = Ctx(lower=False, changed=True, known={}, clause="")
    >>> rule = next(r for r in RULES if r.name == "employer_end")
    >>> [(c.content, c.subject, c.value) for c in rule.build(rule.pattern.search(
    ...     "I no longer work at Google"), ctx)]
    [('{who} no longer works at Google', 'employer', 'not Google')]
"""

from __future__ import annotations

import re

from memcube.extractors.grammar import ADV, AM, Claim, Ctx, Rule, V, org, place, rx, thing
from memcube.extractors.lexicon import (
    CONSUMING,
    DIETS,
    FOODS,
    STOPS_COMMON,
    attribute,
)
from memcube.extractors.text import phrase, strip_article, third_person
from memcube.items import MemoryType

WHO = "{who}"
FACT, PREFERENCE = MemoryType.FACT, MemoryType.PREFERENCE
_PERF = r"I(?:'ve|\s+have)?\s+"
_NOT = r"(?:no\s+longer|don't|dont|do\s+not|never)"
_PARTNER = r"(?:boyfriend|girlfriend|partner|husband|wife|fianc[eé]e?)"
_HABIT_NOUNS = frozenset(
    "social media cigarettes nicotine weed drugs twitter facebook instagram tiktok snapchat "
    "reddit gambling".split()
) | {"social media"}


def _partner_name(text: str, ctx: Ctx) -> str | None:
    """Reads "Sam", "my boyfriend Sam", "my wife": who the relationship is with."""
    value = phrase(text, stops=STOPS_COMMON, max_words=4)
    if value is None or re.search(r"\b(?:I|we)\b", value, re.I):
        return None
    if not (re.match(r"(?:my|someone)\b", value, re.I) or value[0].isupper() or ctx.lower):
        return None
    return third_person(value)


# ---------------------------------------------------------------------------- relationships
def _broke_up_with(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    who = _partner_name(m.group("p"), ctx)
    if who is None:
        return []
    return [Claim(f"{WHO} broke up with {who}", "relationship", f"not with {who}")]


def _we_broke_up(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    rest = m.group("rest").strip(" ,.!")
    if rest and not re.match(r"(?:after|a\s+while|for\s+good|recently)\b", rest, re.I):
        return []  # "we split the bill"
    return [Claim(f"{WHO} is no longer in a relationship", "relationship", "single")]


def _not_together(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    return [Claim(f"{WHO} is no longer in a relationship", "relationship", "single")]


def _not_with(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I'm no longer with Marco" (said with "anymore" / "no longer")."""
    who = _partner_name(m.group("p"), ctx)
    if who is None or not ctx.changed:
        return []
    return [Claim(f"{WHO} is no longer with {who}", "relationship", f"not with {who}")]


def _single(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    state = m.group("k").lower()
    return [Claim(f"{WHO} is {state}", "relationship", state)]


def _together(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    who = _partner_name(m.group("p"), ctx)
    if who is None:
        return []
    kind = m.group("k").lower()
    if kind in {"engaged", "married"}:
        return [Claim(f"{WHO} is {kind} to {who}", "relationship", f"{kind} to {who}")]
    return [Claim(f"{WHO} is in a relationship with {who}", "relationship", f"with {who}")]


def _married(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    kind = m.group("k").lower()
    if m.group("p"):
        who = _partner_name(m.group("p"), ctx)
        if who is None:
            return []
        return [Claim(f"{WHO} is {kind} to {who}", "relationship", f"{kind} to {who}")]
    return [Claim(f"{WHO} is {kind}", "relationship", kind)]


def _dating(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    who = _partner_name(m.group("p"), ctx)
    if who is None:
        return []
    return [Claim(f"{WHO} is dating {who}", "relationship", f"with {who}")]


def _has_partner(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    kind = m.group("k").lower()
    name = _partner_name(m.group("p"), ctx) if m.group("p") else None
    if m.group("p") and name is None:
        return []
    said = f"a {kind} named {name}" if name else f"a {kind}"
    return [Claim(f"{WHO} has {said}", "relationship", f"with {name or kind}")]


def _is_my_partner(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    name = m.group("p")
    if not (name[0].isupper() or ctx.lower):
        return []
    kind = m.group("k").lower()
    return [Claim(f"{WHO}'s {kind} is {name}", "relationship", f"with {name}")]


# ---------------------------------------------------------------------------- bands
def _band_name(text: str | None, ctx: Ctx) -> str | None:
    if not text:
        return None
    return phrase(text, stops=STOPS_COMMON - {"and"}, max_words=5, proper=not ctx.lower)


def _band(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    name = _band_name(m.group("b"), ctx)
    if m.group("b") and name is None:
        return []
    out = [
        Claim(f"{WHO} is in the band {name}", "band", name)
        if name
        else Claim(f"{WHO} is in a band", "band", "a band")
    ]
    if "i" in m.groupdict() and m.group("i"):
        played = thing(m.group("i"), max_words=3)
        if played:
            subject = f"activity: {strip_article(played).lower()}"
            out.append(Claim(f"{WHO} plays {played}", subject, "plays", name="activity"))
    return out


def _band_end(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    name = _band_name(m.group("b"), ctx) if m.groupdict().get("b") else None
    if name is None and m.groupdict().get("b"):
        return []
    known = ctx.known.get("band", "")
    if name is None and known and not known.startswith(("not ", "a band", "none")):
        name = known  # "I left the band": the one named earlier
    if name is None:
        return [Claim(f"{WHO} is no longer in the band", "band", "none")]
    return [Claim(f"{WHO} is no longer in the band {name}", "band", f"not {name}")]


# ---------------------------------------------------------------------------- work, home
def _no_longer_works(name: str) -> Claim:
    return Claim(f"{WHO} no longer works at {name}", "employer", f"not {name}", name="employer_end")


def _employer_end(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    name = org(m.group("v"), ctx)
    return [_no_longer_works(name)] if name else []


def _not_at(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I'm not at Google anymore": only a named place, and only with "anymore"."""
    name = org(m.group("v"), ctx, proper=True)
    return [_no_longer_works(name)] if name and ctx.changed else []


def _lost_job(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    said = " ".join(m.group("k").lower().split()).replace("'ve ", "").replace("have ", "")
    return [Claim(f"{WHO} {third_person(said)}", "employer", "none")]


def _not_working(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    state = " ".join(m.group("k").lower().split())
    return [Claim(f"{WHO} is {state}", "employer", state)]


def _left(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I left X": the band, the town or (by default) the employer X, whichever the speaker
    named as such earlier in the conversation."""
    name = org(m.group("v"), ctx, proper=True)
    if name is None or not (name[0].isupper() or ctx.lower):
        return []  # "I left my keys", "I left early"
    if ctx.lower and name.split()[0] in {"my", "their", "the", "a", "an", "work", "home", "early"}:
        return []
    key = name.casefold()
    if ctx.known.get("band", "").casefold() == key:
        return [
            Claim(f"{WHO} is no longer in the band {name}", "band", f"not {name}", name="band_end")
        ]
    if ctx.known.get("residence", "").casefold() == key:
        return [
            Claim(
                f"{WHO} no longer lives in {name}", "residence", f"not {name}", name="residence_end"
            )
        ]
    return [_no_longer_works(name)]


def _residence_end(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    text = m.group("v")
    to = re.search(r"\s+to\s+(?P<new>.+)$", text, re.I)
    if to:  # "I moved out of London to Brighton"
        new = place(to.group("new"), ctx)
        return [Claim(f"{WHO} lives in {new}", "residence", new, name="residence")] if new else []
    town = place(text, ctx)
    if town is None:
        return []
    said = "no longer lives" if ctx.changed or "moved" in m.group(0).lower() else "does not live"
    return [Claim(f"{WHO} {said} in {town}", "residence", f"not {town}")]


# ---------------------------------------------------------------------------- habits, diet
def _used_to_live(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    town = place(m.group("v"), ctx)
    return [Claim(f"{WHO} no longer lives in {town}", "residence", f"not {town}")] if town else []


def _used_to(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I used to smoke": the habit ended."""
    verb = m.group("verb").lower()
    return [Claim(f"{WHO} no longer {verb}s", f"habit: {_BASE_VERBS[verb]}", f"no longer {verb}s")]


def _verb(said: str) -> str:
    said = " ".join(said.lower().split())
    return {"given up": "gave up", "quitted": "quit"}.get(said, said)


def _stopped(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    verb = _verb(m.group("verb"))
    words = m.group("v").split()
    first = words[0].lower().strip(",.")
    if first.endswith("ing") and len(first) > 4:
        obj = thing(" ".join(words[1:]), max_words=4) if len(words) > 1 else None
        if first in CONSUMING and obj:
            subject = f"diet: {strip_article(obj).lower()}"
            return [
                Claim(
                    f"{WHO} {verb} {first} {obj}",
                    subject,
                    verb,
                    memory_type=PREFERENCE,
                    name="diet_end",
                )
            ]
        if first == "playing" and obj:
            subject = f"activity: {strip_article(obj).lower()}"
            return [Claim(f"{WHO} {verb} playing {obj}", subject, verb, name="activity_end")]
        if first == "learning" and obj:
            return [
                Claim(
                    f"{WHO} {verb} learning {obj}",
                    f"learning: {obj.lower()}",
                    verb,
                    name="learning_end",
                )
            ]
        rest = " ".join(words[1:])
        tail = phrase(rest, stops=STOPS_COMMON, max_words=4, allow_starts={"to"}) if rest else ""
        if tail is None:
            return []
        habit = third_person(f"{first} {tail}".strip())
        return [Claim(f"{WHO} {verb} {habit}", f"habit: {habit.lower()}", verb)]
    if re.match(r"my\s+job\b", m.group("v"), re.I):
        return [Claim(f"{WHO} {verb} their job", "employer", "none", name="employer_end")]
    what = thing(m.group("v"), max_words=4)
    if what is None:
        return []
    bare = strip_article(what).lower()
    if bare in FOODS:
        return [
            Claim(
                f"{WHO} {verb} {what}",
                f"diet: {bare}",
                verb,
                memory_type=PREFERENCE,
                name="diet_end",
            )
        ]
    if bare in _HABIT_NOUNS or bare.split()[-1] in _PASTIMES:
        return [Claim(f"{WHO} {verb} {what}", f"habit: {bare}", verb)]
    if verb in {"quit", "dropped", "ditched"} and (what[0].isupper() or ctx.lower):
        return _left(m, ctx)
    return []


_PASTIMES = frozenset("gym choir team club league course class classes orchestra".split())
_BASE_VERBS = {"smoke": "smoking", "vape": "vaping", "gamble": "gambling", "drink": "drinking"}


def _dont(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I don't eat meat (anymore)", "I no longer smoke", "I don't play golf anymore"."""
    verb = m.group("verb").lower()
    changed = ctx.changed or "longer" in m.group(0).lower()
    obj = thing(m.group("v"), max_words=4) if m.group("v").strip() else None
    third = verb + ("s" if not verb.endswith("s") else "es")
    said = f"no longer {third}" if changed else f"does not {verb}"
    if verb in {"eat", "drink"} and obj:
        subject = f"diet: {strip_article(obj).lower()}"
        return [
            Claim(f"{WHO} {said} {obj}", subject, said, memory_type=PREFERENCE, name="diet_end")
        ]
    if verb == "play" and obj and changed:
        return [
            Claim(
                f"{WHO} {said} {obj}",
                f"activity: {strip_article(obj).lower()}",
                "stopped",
                name="activity_end",
            )
        ]
    if verb in _BASE_VERBS and obj is None:
        return [Claim(f"{WHO} {said}", f"habit: {_BASE_VERBS[verb]}", said)]
    return []


def _not_diet(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    diet = " ".join(m.group("v").lower().split())
    said = "no longer" if ctx.changed or "longer" in m.group(0).lower() else "not"
    return [Claim(f"{WHO} is {said} {diet}", "diet", f"not {diet}")]


def _not_allergic(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    allergen = thing(m.group("v"), max_words=3)
    if allergen is None:
        return []
    said = "no longer" if ctx.changed or "longer" in m.group(0).lower() else "not"
    return [
        Claim(f"{WHO} is {said} allergic to {allergen}", f"allergy: {allergen}", f"{said} allergic")
    ]


def _not_smoker(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    habit = "vaping" if m.group("verb").lower().startswith("vape") else "smoking"
    said = "no longer" if ctx.changed or "longer" in m.group(0).lower() else "does not"
    verb = "vapes" if habit == "vaping" else "smokes"
    verb = verb if said == "no longer" else verb[:-1]
    return [Claim(f"{WHO} {said} {verb}", f"habit: {habit}", f"{said} {verb}")]


def _not_learning(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what = thing(m.group("v"), max_words=4, allow_to=True)
    if what is None or not (ctx.changed or "longer" in m.group(0).lower()):
        return []
    return [Claim(f"{WHO} is no longer learning {what}", f"learning: {what.lower()}", "stopped")]


def _no_car(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    if "sold" in m.group(0).lower():
        return [Claim(f"{WHO} sold their car", "car", "none")]
    said = "no longer has" if ctx.changed or "longer" in m.group(0).lower() else "does not have"
    return [Claim(f"{WHO} {said} a car", "car", "none")]


# ---------------------------------------------------------------------------- switches
def _switched_my(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    said = " ".join(m.group("k").split())
    subject = attribute(said) or said.lower()
    value = phrase(m.group("v"), stops=STOPS_COMMON, max_words=6)
    if value is None:
        return []
    if subject == "phone number" and not re.search(r"\d", value):
        return []
    if subject == "email" and "@" not in value:
        return []
    verb = _verb(m.group("verb"))
    return [Claim(f"{WHO} {verb} their {said} to {third_person(value)}", subject, value)]


def _switched_from(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    old, new = thing(m.group("a"), max_words=4), thing(m.group("v"), max_words=4)
    if old is None or new is None:
        return []
    pair = " vs ".join(sorted([old.casefold(), new.casefold()]))
    verb = _verb(m.group("verb"))
    return [Claim(f"{WHO} {verb} from {old} to {new}", f"preference: {pair}", new)]


_SPLIT = (
    r"(?:broke\s+up|split\s+up|split|separated|divorced|got\s+divorced|"
    r"called\s+it\s+(?:off|quits)|are\s+(?:no\s+longer|not)\s+together|aren't\s+together|"
    r"are\s+over|'re\s+over)"
)
_FIRED = r"(?:laid\s+off|fired|sacked|let\s+go|made\s+redundant)"

RULES = [
    Rule("relationship_end", rx(rf"(?P<p>(?:my\s+)?[\w'-]+(?:\s+[\w'-]+){{0,2}}?)\s+and\s+I\s+(?:have\s+|'ve\s+)?{ADV}{_SPLIT}"), FACT, _broke_up_with),
    Rule("relationship_end", rx(rf"we(?:'ve|\s+have)?\s+{ADV}{_SPLIT}(?P<rest>.*)$"), FACT, _we_broke_up),
    Rule("relationship_end", rx(r"(?:(?:we're|we\s+are)\s+(?:not|no\s+longer)\s+together|we\s+aren't\s+together)\b"), FACT, _not_together),
    Rule("relationship_end", rx(rf"I(?:'ve|\s+have)?\s+{ADV}(?:broke\s+up|split\s+up|split|separated)\s+(?:with|from)\s+(?P<p>.+)"), FACT, _broke_up_with),
    Rule("relationship_end", rx(rf"{AM}\s+{ADV}(?P<k>single|divorced|separated|widowed)\b"), FACT, _single),
    Rule("relationship_end", rx(rf"I\s+{ADV}got\s+(?P<k>divorced)\b"), FACT, _single),
    Rule("relationship", rx(r"(?P<p>(?:my\s+)?[\w'-]+(?:\s+[\w'-]+){0,2}?)\s+and\s+I\s+(?:are|have\s+been|'ve\s+been|got|just\s+got|recently\s+got)\s+(?:now\s+)?(?P<k>together|dating|going\s+out|a\s+couple|engaged|married)\b"), FACT, _together),
    Rule("relationship", rx(rf"(?:{AM}|we're|we\s+are|I(?:'ve|\s+have)\s+been|we(?:'ve|\s+have)\s+been|(?:I|we)\s+{ADV}got)\s+{ADV}(?:happily\s+)?(?P<k>married|engaged)\b(?:\s+to\s+(?P<p>.+))?"), FACT, _married),
    Rule("relationship", rx(rf"{AM}\s+{ADV}(?:dating|seeing|going\s+out\s+with|in\s+a\s+relationship\s+with)\s+(?P<p>.+)"), FACT, _dating),
    Rule("relationship", rx(rf"(?:I\s+have\s+got|I've\s+got|I\s+have|I've)\s+(?:a\s+)?(?:new\s+)?(?P<k>{_PARTNER})(?:\s+(?:called|named)\s+(?P<p>.+))?$"), FACT, _has_partner),
    Rule("relationship", rx(rf"(?P<p>[\w'-]+)\s+is\s+my\s+(?P<k>{_PARTNER})\b"), FACT, _is_my_partner),
    Rule("band_end", rx(rf"{_PERF}{ADV}(?:left|quit)\s+(?:the|my|our)\s+band(?:\s+(?:called\s+)?(?P<b>.+))?"), FACT, _band_end),
    Rule("band_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+in\s+(?:the|my|our)\s+band(?:\s+(?:called\s+)?(?P<b>.+))?"), FACT, _band_end),
    Rule("band", rx(rf"{AM}\s+{ADV}in\s+a\s+band(?:\s+(?:called|named)\s+(?P<b>.+))?"), FACT, _band),
    Rule("band", rx(rf"I\s+{ADV}(?:play|sing|drum)(?:\s+(?P<i>.+?))?\s+in\s+a\s+band\s+(?:called|named)\s+(?P<b>.+)"), FACT, _band),
    Rule("band", rx(rf"{_PERF}{ADV}joined\s+a\s+band\s+(?:called|named)\s+(?P<b>.+)"), FACT, _band),
    Rule("employer_end", rx(rf"I\s+{_NOT}\s+work\s+(?:at|for|with)\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+working\s+(?:at|for|with)\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"{_PERF}{ADV}(?:stopped|quit)\s+working\s+(?:at|for|with)\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"{_PERF}{ADV}(?:quit|left|resigned\s+from|handed\s+in\s+my\s+notice\s+at)\s+my\s+(?:old\s+|current\s+)?(?:job|position|role|post)\s+(?:at|with)\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"I(?:'ve|\s+have)?\s+(?:just\s+)?(?:got|was|were|been)\s+{_FIRED}\s+(?:from|at|by)\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"{_PERF}{ADV}(?:resigned|retired)\s+from\s+{V}"), FACT, _employer_end),
    Rule("employer_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+at\s+{V}"), FACT, _not_at),
    Rule("relationship_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+with\s+(?P<p>.+)"), FACT, _not_with),
    Rule("employer_end", rx(rf"I\s+used\s+to\s+work\s+(?:at|for)\s+{V}"), FACT, _employer_end),
    Rule("residence_end", rx(rf"I\s+used\s+to\s+live\s+in\s+{V}"), FACT, _used_to_live),
    Rule("habit_end", rx(r"I\s+used\s+to\s+(?P<verb>smoke|vape|gamble)\b"), FACT, _used_to),
    Rule("diet_end", rx(rf"I\s+used\s+to\s+be\s+(?:an?\s+)?(?P<v>{DIETS})\b"), PREFERENCE, _not_diet),
    Rule("employer_end", rx(rf"I\s+(?P<k>(?:'ve\s+|have\s+)?{ADV}(?:quit|left|lost)\s+my\s+job)\b"), FACT, _lost_job),
    Rule("employer_end", rx(rf"I\s+(?P<k>(?:got|was|have\s+been|'ve\s+been)\s+{_FIRED})\s*$"), FACT, _lost_job),
    Rule("employer_end", rx(rf"{AM}\s+{ADV}(?P<k>unemployed|between\s+jobs|out\s+of\s+work|retired|jobless)\b"), FACT, _not_working),
    Rule("residence_end", rx(rf"(?:I|we)\s+{_NOT}\s+live\s+in\s+{V}"), FACT, _residence_end),
    Rule("residence_end", rx(rf"(?:{AM}|we're|we\s+are)\s+(?:no\s+longer|not)\s+living\s+in\s+{V}"), FACT, _residence_end),
    Rule("residence_end", rx(rf"(?:I|we)(?:'ve|\s+have)?\s+{ADV}moved\s+(?:out\s+of|away\s+from)\s+{V}"), FACT, _residence_end),
    Rule("habit_end", rx(rf"{_PERF}{ADV}(?P<verb>quit|quitted|stopped|gave\s+up|given\s+up|cut\s+out|cut\s+down\s+on|kicked|ditched|dropped)\s+{V}"), FACT, _stopped),
    Rule("habit_end", rx(rf"I\s+{_NOT}\s+(?P<verb>smoke|vape|drink|eat|gamble|play)\b(?P<v>.*)$"), FACT, _dont),
    Rule("employer_end", rx(rf"{_PERF}{ADV}(?:left|quit)\s+{V}"), FACT, _left),
    Rule("diet_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+(?:an?\s+|strictly\s+)?(?P<v>{DIETS})\b"), PREFERENCE, _not_diet),
    Rule("allergy_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+(?:severely\s+|very\s+)?allergic\s+to\s+{V}"), FACT, _not_allergic),
    Rule("habit_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+(?:an?\s+)?(?:heavy\s+|social\s+)?(?P<verb>smoker|vaper)\b"), FACT, _not_smoker),
    Rule("learning_end", rx(rf"{AM}\s+(?:no\s+longer|not)\s+learning\s+{V}"), FACT, _not_learning),
    Rule("car_end", rx(rf"(?:{_PERF}{ADV}sold\s+my\s+car|I\s+{_NOT}\s+(?:have|own)\s+a\s+car)\b"), FACT, _no_car),
    Rule("switch", rx(rf"{_PERF}{ADV}(?P<verb>switched|changed|swapped|updated)\s+my\s+(?P<k>[\w' -]+?)\s+(?:to|for|over\s+to)\s+{V}"), FACT, _switched_my),
    Rule("switch", rx(rf"{_PERF}{ADV}(?P<verb>switched|changed|converted)\s+from\s+(?P<a>[^,]+?)\s+to\s+{V}"), PREFERENCE, _switched_from),
]  # fmt: skip

__all__ = ["RULES"]
