"""Rules for the speaker's tastes, pastimes and belongings: favourites, preferences, likes and
dislikes, what they play, learn and train for, their car, children and pets, and "my X is Y"
attributes (phone number, email, birthday...).

Example:
    >>> from memcube.extractors.grammar import Ctx
    >>> ctx = Ctx(lower=False, changed=False, known={}, clause="")
    >>> rule = next(r for r in RULES if r.name == "attribute")
    >>> [(c.content, c.subject) for c in rule.build(rule.pattern.search("my mobile's 07700 900461"), ctx)]
    [("{who}'s phone number is 07700 900461", 'phone number')]
"""

from __future__ import annotations

import re

from memcube.extractors.grammar import ADV, AM, HAVE, Claim, Ctx, Rule, V, rx, thing
from memcube.extractors.lexicon import (
    BREEDS,
    KIDS,
    PETS,
    RELATIONS,
    SECRETS,
    SIBLINGS,
    STOPS_ACTIVITY,
    STOPS_COMMON,
    TRANSIENT,
    attribute,
)
from memcube.extractors.text import phrase, strip_article, third_person
from memcube.items import MemoryType

WHO = "{who}"
FACT, PREFERENCE, PROFILE = MemoryType.FACT, MemoryType.PREFERENCE, MemoryType.PROFILE
_PROFILE_ATTRIBUTES = frozenset(
    "phone number|email|address|postcode|birthday|blood type|star sign|surname|middle name|"
    "maiden name|nickname|username|shoe size|dress size|height|nationality|native language".split(
        "|"
    )
)
_VEHICLE = re.compile(
    r"\b(?:car|van|truck|pickup|suv|hatchback|estate|saloon|sedan|convertible|coupe|jeep|"
    r"motorbike|motorcycle|scooter|moped|ev|hybrid|camper|campervan|minivan)\b",
    re.I,
)
_RELATION = re.compile(rf"^(?:\w+\s+)?(?:{RELATIONS})s?$", re.I)


# ---------------------------------------------------------------------------- tastes
def _favorite(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    kind = thing(m.group("k"), max_words=4)
    value = phrase(m.group("v"), stops=STOPS_COMMON - {"and"}, max_words=7)
    if kind is None or value is None:
        return []
    value = third_person(value)
    return [Claim(f"{WHO}'s favorite {kind} is {value}", f"favorite {kind.lower()}", value)]


def _prefer_over(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    first, other = thing(m.group("v"), allow_to=True), thing(m.group("o"), allow_to=True)
    if first is None or other is None:
        return []
    pair = " vs ".join(sorted([first.casefold(), other.casefold()]))
    return [Claim(f"{WHO} prefers {first} over {other}", f"preference: {pair}", first)]


def _prefer(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    value = thing(m.group("v"), allow_to=True)
    return [Claim(f"{WHO} prefers {value}", None, value)] if value else []


def _likes(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    value = thing(m.group("v"), max_words=7, allow_to=True)
    return [Claim(f"{WHO} likes {value}", f"opinion: {value}", "likes")] if value else []


def _dislikes(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    value = thing(m.group("v"), max_words=7, allow_to=True)
    return [Claim(f"{WHO} dislikes {value}", f"opinion: {value}", "dislikes")] if value else []


# ---------------------------------------------------------------------------- pastimes
def _plays(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    value = phrase(m.group("v"), stops=STOPS_ACTIVITY, max_words=4)
    if value is None:
        return []
    value = third_person(value)
    verb = "practises" if m.group(0).lower().split()[1].startswith("practi") else "plays"
    return [Claim(f"{WHO} {verb} {value}", f"activity: {strip_article(value).lower()}", "plays")]


def _does(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what = " ".join(m.group("v").lower().split())
    verb = "goes" if m.group("verb").lower() == "go" else "does"
    return [Claim(f"{WHO} {verb} {what}", f"activity: {what}", "yes")]


_AMOUNT = re.compile(
    r"(?:a\s+lot|lots|loads|so\s+much|a\s+bit|a\s+ton|a\s+little|much|more)\b", re.I
)


def _learning(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what = phrase(
        m.group("v"), stops=STOPS_ACTIVITY - {"on", "in"}, max_words=5, allow_starts={"to"}
    )
    if what is None or _AMOUNT.match(what):
        return []  # "I'm learning a lot"
    what = third_person(what)
    return [Claim(f"{WHO} is learning {what}", f"learning: {what.lower()}", "learning")]


def _lessons(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what = thing(m.group("v"), max_words=3)
    if what is None:
        return []
    kind = m.group("kind").lower()
    return [Claim(f"{WHO} is taking {what} {kind}", f"learning: {what.lower()}", "learning")]


def _training(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    event = thing(m.group("v"), max_words=6)
    if event is None:
        return []
    return [Claim(f"{WHO} is training for {event}", "training", strip_article(event))]


def _race(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    event = " ".join(m.group("v").split())
    verb = m.group("verb").lower()
    return [Claim(f"{WHO} is {verb} {third_person(event)}", "training", strip_article(event))]


# ---------------------------------------------------------------------------- belongings
def _drives(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    car = thing(m.group("v"), max_words=5)
    if car is None or not (_VEHICLE.search(car) or any(w[0].isupper() for w in car.split()[1:])):
        return []
    return [Claim(f"{WHO} drives {car}", "car", strip_article(car))]


def _my_car(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    car = thing(m.group("v"), max_words=5)
    if car is None:
        return []
    return [Claim(f"{WHO}'s car is {car}", "car", strip_article(car))]


def _head(item: str) -> str:
    """The noun an item is about: "a dog named Rex" -> "dog", "two little girls" -> "girls"."""
    words = re.split(r"\s+(?:called|named)\s+", item, maxsplit=1, flags=re.I)[0].split()
    return words[-1].lower().strip(",.") if words else ""


def _singular(word: str) -> str:
    if word in {"mice"}:
        return "mouse"
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _family(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    listed = phrase(
        m.group("v"), stops=STOPS_COMMON - {"and"}, max_words=10, commas=True, allow_starts={"no"}
    )
    if listed is None:
        return []
    groups: dict[str, list[str]] = {}
    for part in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", listed):
        item = phrase(part, stops=STOPS_COMMON, max_words=6, allow_starts={"no"})
        if item is None:
            continue
        head = _head(item)
        if head in KIDS:
            groups.setdefault("children", []).append(item)
        elif head in SIBLINGS:
            groups.setdefault("siblings", []).append(item)
        elif head in PETS or _singular(head) in BREEDS:
            animal = BREEDS.get(_singular(head), _singular(head))
            groups.setdefault(f"pet: {animal}", []).append(item)
    out = []
    for subject, found in groups.items():
        said = third_person(" and ".join(found))
        out.append(Claim(f"{WHO} has {said}", subject, said))
    return out


def _attribute(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "my mobile's 07700 900461", "my birthday is 3 June", "my dog's name is Rex"."""
    key, value_text = " ".join(m.group("k").lower().split()), m.group("v")
    if m.group("is").startswith("'"):
        more = re.match(
            r"(?P<k>[a-z][\w-]*(?:\s+[a-z][\w-]*)?)\s+(?:is|are)\s+(?P<v>.+)", value_text
        )
        if more:  # "my dog's name is Rex": a possessive, not "is"
            key, value_text = f"{key}'s {more.group('k').lower()}", more.group("v")
    named = re.match(r"(?:called|named)\s+(?P<v>.+)", value_text, re.I)
    if named:
        key, value_text = f"{key}'s name", named.group("v")
    if "favo" in key or _RELATION.match(key) or any(s in key for s in SECRETS):
        return []
    canonical = attribute(key)
    if canonical == "birthday":
        value_text = re.sub(r"^on\s+", "", value_text, flags=re.I)
    value = phrase(value_text, stops=STOPS_COMMON, max_words=6)
    if value is None:
        return []
    factual = bool(re.search(r"[\d@]", value)) or (value[0].isupper() and not ctx.lower)
    if canonical == "phone number" and not re.search(r"\d{3}", value):
        return []
    if canonical == "email" and "@" not in value:
        return []
    if canonical is None and (key.split()[-1] in TRANSIENT or not factual or len(key.split()) > 3):
        return []
    subject = canonical or key
    mtype = PROFILE if subject in _PROFILE_ATTRIBUTES else FACT
    shown = subject if canonical in _PROFILE_ATTRIBUTES else key
    said = third_person(value)
    if key.endswith("'s name"):  # "my dog's name is Rex": "User's dog is named Rex"
        owner = key.removesuffix("'s name")
        return [Claim(f"{WHO}'s {owner} is named {said}", subject, value)]
    return [Claim(f"{WHO}'s {shown} is {said}", subject, value, memory_type=mtype)]


_SPORTS = (
    r"yoga|pilates|karate|judo|crossfit|ballet|boxing|kickboxing|parkour|running|swimming|"
    r"climbing|bouldering|cycling|hiking|surfing|skiing|snowboarding|skating|dancing|fencing|"
    r"rowing|archery|taekwondo|jiu[- ]jitsu|tai\s+chi|meditation|salsa|zumba|spinning|kayaking|"
    r"sailing|diving|scuba\s+diving|fishing|birdwatching|gardening|woodworking|knitting|pottery"
)
_HAVE_GOT = r"(?:I|we)(?:'ve\s+got|\s+have\s+got|\s+have|'ve|\s+got)"
_COUNT = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|no|twin)"
_DISLIKE = (
    r"(?:hate|dislike|detest|loathe|despise|can't\s+stand|cannot\s+stand|can\s+not\s+stand|"
    r"don't\s+like|do\s+not\s+like|dont\s+like|don't\s+enjoy|do\s+not\s+enjoy|no\s+longer\s+like|"
    r"don't\s+care\s+for|can't\s+bear|cannot\s+bear)"
)

RULES = [
    Rule("favorite", rx(rf"my\s+(?:all[- ]time\s+|absolute\s+|current\s+|new\s+)?favou?rite\s+(?P<k>[a-z][a-z -]{{0,30}}?)(?:'s|\s+is|\s+are|\s+has\s+(?:got\s+)?to\s+be|\s+would\s+(?:have\s+to\s+)?be)\s+{V}"), PREFERENCE, _favorite),
    Rule("favorite", rx(r"(?P<v>[^,]+?)\s+(?:is|are|'s)\s+my\s+(?:all[- ]time\s+|absolute\s+)?favou?rite\s+(?P<k>[a-z][a-z -]{0,30})"), PREFERENCE, _favorite),
    Rule("prefer", rx(rf"I\s+{ADV}(?:much\s+|generally\s+|usually\s+|definitely\s+)?prefer\s+(?P<v>[^,]+?)\s+(?:over|to|rather\s+than|instead\s+of)\s+(?P<o>.+)"), PREFERENCE, _prefer_over),
    Rule("prefer", rx(rf"I\s+{ADV}(?:much\s+|generally\s+|usually\s+|definitely\s+)?prefer\s+{V}"), PREFERENCE, _prefer),
    Rule("training", rx(rf"{AM}\s+{ADV}(?:in\s+)?training\s+for\s+{V}"), FACT, _training),
    Rule("training", rx(rf"{AM}\s+{ADV}(?P<verb>running|doing|cycling|swimming|riding)\s+(?P<v>(?:a|the|my\s+first)\s+(?:[\w-]+\s+){{0,3}}(?:marathon|half[- ]marathon|triathlon|ultra|ultramarathon|10k|5k|ironman|race|sportive))\b"), FACT, _race),
    Rule("activity", rx(rf"I\s+{ADV}(?P<verb>do|go)\s+(?P<v>{_SPORTS})\b"), FACT, _does),
    Rule("activity", rx(rf"I\s+{ADV}(?:play|practi[cs]e)\s+{V}"), FACT, _plays),
    Rule("activity", rx(rf"{HAVE}\s+been\s+{ADV}(?:playing|practi[cs]ing)\s+{V}"), FACT, _plays),
    Rule("learning", rx(rf"(?:{AM}|{HAVE}\s+been|I(?:'ve|\s+have)?\s+{ADV}(?:started|begun|began))\s+{ADV}learning\s+{V}"), FACT, _learning),
    Rule("learning", rx(rf"{AM}\s+{ADV}(?:taking|doing)\s+(?P<v>[\w' -]+?)\s+(?P<kind>lessons|classes|courses)\b"), FACT, _lessons),
    Rule("car", rx(rf"I\s+{ADV}drive\s+(?P<v>(?:a|an)\s+.+)"), FACT, _drives),
    Rule("car", rx(r"my\s+(?:new\s+|current\s+)?car\s+is\s+(?P<v>(?:a|an)\s+.+)"), FACT, _my_car),
    Rule("family", rx(rf"{_HAVE_GOT}\s+(?P<v>(?:{_COUNT}\b.+)|twins\b.*)"), FACT, _family),
    Rule("dislike", rx(rf"I\s+{ADV}{_DISLIKE}\s+{V}"), PREFERENCE, _dislikes),
    Rule("dislike", rx(rf"{AM}\s+(?:not|no\s+longer)\s+(?:a\s+(?:big\s+|huge\s+)?fan\s+of|into|keen\s+on)\s+{V}"), PREFERENCE, _dislikes),
    Rule("like", rx(rf"I\s+{ADV}(?:absolutely\s+|much\s+)?(?:like|love|enjoy|adore)\s+{V}"), PREFERENCE, _likes),
    Rule("like", rx(rf"{AM}\s+{ADV}(?:very\s+|so\s+|super\s+)?(?:into|obsessed\s+with|a\s+(?:big\s+|huge\s+|massive\s+)?fan\s+of|keen\s+on|passionate\s+about|crazy\s+about)\s+{V}"), PREFERENCE, _likes),
    Rule("like", rx(rf"{AM}\s+{ADV}(?:a|an)\s+(?:big|huge|massive|great|die-?hard|lifelong|total)\s+(?P<v>.+?)\s+fan$"), PREFERENCE, _likes),
    Rule("attribute", rx(rf"my\s+(?P<k>[a-z][\w-]*(?:\s+[a-z][\w-]*){{0,2}}?)(?P<is>'s|\s+is|\s+are)\s+{V}"), FACT, _attribute),
]  # fmt: skip

__all__ = ["RULES"]
