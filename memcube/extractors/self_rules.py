"""Rules for what the speaker says about their own life: where they live, where and as what
they work, what they study, their age and name, allergies, health conditions and diet.

Each rule reads one clause; its builder returns the facts as :class:`~memcube.extractors.grammar.Claim`
(an empty list when the value is not a complete noun phrase: then nothing is kept).

Example:
    >>> from memcube.extractors.grammar import Ctx
    >>> ctx = Ctx(lower=False, changed=False, known={}, clause="")
    >>> rule = next(r for r in RULES if r.name == "residence")
    >>> [c.content for c in rule.build(rule.pattern.search("I live in Porto"), ctx)]
    ['{who} lives in Porto']
"""

from __future__ import annotations

import re

from memcube.extractors.grammar import (
    ADV,
    AM,
    HAVE,
    Claim,
    Ctx,
    Rule,
    V,
    employer_claims,
    job,
    place,
    rx,
    thing,
)
from memcube.extractors.lexicon import (
    CONDITIONS,
    DEMONYMS,
    DIETS,
    STOPS_COMMON,
    STOPS_OCCUPATION,
    STOPS_ORG,
)
from memcube.extractors.text import phrase, strip_article
from memcube.items import MemoryType

WHO = "{who}"
FACT, PREFERENCE, PROFILE = MemoryType.FACT, MemoryType.PREFERENCE, MemoryType.PROFILE
_I_OR_WE = r"(?:I|we)"
_WE_HAVE = r"(?:I've|I\s+have|Ive|we've|we\s+have)"
_WE_AM = r"(?:I'm|I\s+am|Im|we're|we\s+are)"
_MANNER = (
    r"(?:(?:remotely|freelance|part[- ]time|full[- ]time|from\s+home|mostly\s+remotely|nights|"
    r"days|weekends|evenings|mornings|shifts|weekdays)\s+)?"
)
_FOR_JOB = re.compile(
    r"\b(?:for|to\s+(?:take|start))\s+(?:a|an|my|the)\s+(?:new\s+)?(?:job|position|role|"
    r"internship)\s+(?:at|with)\s+(?P<org>.+)|\bto\s+(?:work|start)\s+(?:at|for)\s+(?P<org2>.+)",
    re.I,
)


# ---------------------------------------------------------------------------- home
def _residence(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    town = place(m.group("v"), ctx)
    if town is None:
        return []
    out = [Claim(f"{WHO} lives in {town}", "residence", town)]
    work = _FOR_JOB.search(m.group("v"))
    if work:
        out += employer_claims(work.group("org") or work.group("org2"), ctx)[:1]
    return out


def _settled(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "we're in Leeds now": a residence only when it says "now"."""
    return _residence(m, ctx) if ctx.changed else []


def _been_in(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I've been in Austin since May": a residence only when it says how long."""
    return _residence(m, ctx) if ctx.lasting else []


def _origin(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    town = place(m.group("v"), ctx)
    return [Claim(f"{WHO} is from {town}", "origin", town)] if town else []


def _hometown(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    town = place(m.group("v"), ctx)
    return [Claim(f"{WHO} grew up in {town}", "hometown", town)] if town else []


# ---------------------------------------------------------------------------- work
def _employer(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    if re.match(r"myself\b", m.group("v"), re.I):
        return [Claim(f"{WHO} is self-employed", "employer", "self-employed")]
    return employer_claims(m.group("v"), ctx)


def _employer_named(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I joined Google", "I start at Monzo": the organization must be named."""
    return employer_claims(m.group("v"), ctx, proper=True)


def _new_job(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    out = employer_claims(m.group("v"), ctx)
    if out and m.group("occ"):
        out += job(m.group("occ"), ctx, verb="works as", need_trade=False)[:1]
    return out


def _work_in(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    field = phrase(m.group("v"), stops=STOPS_ORG, max_words=3)
    if field is not None and field.isupper() and len(field) <= 5:  # "IT", "HR", "PR"
        return [Claim(f"{WHO} works in {field}", "industry", field)]
    town = place(m.group("v"), ctx)
    if town is not None:
        return [Claim(f"{WHO} works in {town}", "work location", town)]
    field = phrase(m.group("v"), stops=STOPS_ORG, max_words=3)
    if field is None or field[0].isupper():
        return []
    return [Claim(f"{WHO} works in {field}", "industry", field)]


def _self_employed(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    return [Claim(f"{WHO} is self-employed", "employer", "self-employed")]


def _works_as(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    return job(m.group("v"), ctx, verb="works as", need_trade=False)


def _is_a(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    return job(m.group("v"), ctx, verb="is")


def _head_of(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I'm head of product at Marlowe Health": a title without an article."""
    title = phrase(m.group("v"), stops=STOPS_OCCUPATION - {"of"}, max_words=6)
    if title is None:
        return []
    out = [Claim(f"{WHO} is {title}", "occupation", title.lower(), name="occupation")]
    if m.group("org"):
        out += employer_claims(m.group("org"), ctx)[:1]
    return out


def _subject_at(text: str, ctx: Ctx) -> tuple[str | None, list[Claim]]:
    """Reads "maths at Hillside Primary": the subject, and the employer or school after "at"."""
    what = thing(text, max_words=4)
    rest = re.search(r"\s+at\s+(?P<org>.+)$", text, re.I)
    extra = employer_claims(rest.group("org"), ctx)[:1] if rest else []
    return what, extra


def _teach(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what, extra = _subject_at(m.group("v"), ctx)
    if what is None:
        return []
    at = f" at {extra[0].value}" if extra else ""
    return [Claim(f"{WHO} teaches {what}{at}", "occupation", f"teaches {what.lower()}"), *extra]


def _study(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what, extra = _subject_at(m.group("v"), ctx)
    if what is None:
        return []
    at = f" at {extra[0].value}" if extra else ""
    return [Claim(f"{WHO} studies {what}{at}", "studies", what.lower())]


def _degree(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    what, extra = _subject_at(m.group("v"), ctx)
    if what is None:
        return []
    at = f" at {extra[0].value}" if extra else ""
    return [Claim(f"{WHO} is doing {m.group('d')} {what}{at}", "studies", what.lower())]


# ---------------------------------------------------------------------------- profile
def _age(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    n = int(m.group("n"))
    raw = m.group("rest")
    rest = raw.strip(" ,.!")
    listed = raw.lstrip().startswith((",", "and ", "with "))
    if not 0 < n < 120 or (rest and not listed and phrase(rest, stops=STOPS_COMMON) is not None):
        return []  # "I'm 5 minutes away"
    return [Claim(f"{WHO} is {n} years old", "age", str(n))]


def _name_value(text: str, ctx: Ctx) -> str | None:
    value = phrase(text, stops=STOPS_COMMON, max_words=3, proper=not ctx.lower)
    if value is None or not all(w[0].isupper() or ctx.lower for w in value.split()):
        return None
    return value if value.lower() not in DEMONYMS else None


def _name(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    value = _name_value(m.group("v"), ctx)
    return [Claim(f"{WHO}'s name is {value}", "name", value)] if value else []


def _im_name(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    """Reads "I'm Dana": a single capitalized word that is no nationality, faith or adjective."""
    value = m.group("v")
    if ctx.lower or not value[0].isupper() or len(value.split()) > 2:
        return []
    return _name(m, ctx)


# ---------------------------------------------------------------------------- health, diet
def _allergy(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    listed = phrase(m.group("v"), stops=STOPS_COMMON - {"and", "or"}, max_words=10, commas=True)
    if listed is None:
        return []
    out = []
    for part in re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+", listed):
        allergen = thing(part, max_words=3)
        if allergen:
            out.append(
                Claim(f"{WHO} is allergic to {allergen}", f"allergy: {allergen}", "allergic")
            )
    return out


def _allergy_noun(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    allergen = m.group("v").lower()
    if allergen in {"an", "a", "the", "my", "bad", "severe"}:
        return []
    return [Claim(f"{WHO} has a {allergen} allergy", f"allergy: {allergen}", "allergic")]


def _condition(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    cond = " ".join(m.group("v").split())
    verb = "is" if re.match(AM, m.group(0), re.I) else "has"
    subject = f"condition: {strip_article(cond).lower()}"
    return [Claim(f"{WHO} {verb} {cond}", subject, verb)]


def _diet(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    diet = " ".join(m.group("v").split()).lower()
    return [Claim(f"{WHO} is {diet}", "diet", diet)]


def _diet_follow(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    diet = " ".join(m.group("v").split()).lower()
    return [Claim(f"{WHO} follows a {diet} diet", "diet", diet)]


def _smokes(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    verb = m.group("verb").lower()
    habit = "vaping" if verb.startswith("vape") else "smoking"
    return [Claim(f"{WHO} {'vapes' if habit == 'vaping' else 'smokes'}", f"habit: {habit}", "yes")]


_SEVERITY = r"(?:severely\s+|very\s+|mildly\s+|deathly\s+|super\s+|quite\s+|highly\s+|badly\s+)?"
_HAS = r"(?:I\s+have\s+got|I've\s+got|I\s+have|I've|I\s+got|I\s+suffer\s+from|I\s+live\s+with)"
_DEGREES = (
    r"(?P<d>a\s+(?:PhD|doctorate|masters?|master's|degree|bachelor's|BSc|MSc|MA|BA|MBA|diploma|"
    r"course|certificate|apprenticeship)\s+in)"
)

RULES = [
    Rule("residence", rx(rf"{_I_OR_WE}\s+{ADV}(?:live|reside)\s+(?:in|near)\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"{_WE_HAVE}\s+{ADV}(?:lived|been\s+living|been\s+based|settled)\s+in\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"{_WE_AM}\s+{ADV}(?:living|based|settled|residing)\s+(?:in|near)\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"{_I_OR_WE}(?:'ve|\s+have)?\s+{ADV}(?:moved|relocated|emigrated)\s+(?:back\s+)?(?:here\s+)?(?:from\s+[^,]+?\s+)?to\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"{_WE_AM}\s+{ADV}(?:moving|relocating)\s+(?:back\s+)?to\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"(?:we're|we\s+are)\s+(?:now\s+)?(?:in|settled\s+in)\s+{V}"), FACT, _settled),
    Rule("residence", rx(rf"{_I_OR_WE}(?:'ve|\s+have)?\s+{ADV}(?:bought|got)\s+(?:a|an|our|my)\s+(?:first\s+|new\s+|own\s+)?(?:house|flat|place|home|apartment|condo)\s+in\s+{V}"), FACT, _residence),
    Rule("residence", rx(rf"{_WE_HAVE}\s+{ADV}been\s+(?:in|settled\s+in)\s+{V}"), FACT, _been_in),
    Rule("origin", rx(rf"{AM}\s+{ADV}(?:originally\s+)?from\s+{V}"), PROFILE, _origin),
    Rule("hometown", rx(rf"I\s+{ADV}grew\s+up\s+in\s+{V}"), PROFILE, _hometown),
    Rule("employer", rx(rf"I\s+{ADV}work\s+{_MANNER}(?:at|for)\s+{V}"), FACT, _employer),
    Rule("employer", rx(rf"{HAVE}\s+{ADV}(?:worked|been\s+working)\s+{_MANNER}(?:at|for)\s+{V}"), FACT, _employer),
    Rule("employer", rx(rf"{AM}\s+{ADV}working\s+{_MANNER}(?:at|for)\s+{V}"), FACT, _employer),
    Rule("employer", rx(rf"I(?:'ve|\s+have)?\s+{ADV}(?:started|began|begun)\s+(?:(?:working|work)\s+(?:at|for)|a\s+(?:new\s+)?(?:job|position|role|internship)\s+(?:at|with)|at)\s+{V}"), FACT, _employer),
    Rule("employer", rx(rf"I(?:'ve|\s+have)?\s+{ADV}(?:got|landed|accepted|took|taken|gotten)\s+(?:a|the)\s+(?:new\s+)?(?:job|position|role|internship|offer)(?:\s+as\s+(?P<occ>.+?))?\s+(?:at|with)\s+{V}"), FACT, _new_job),
    Rule("employer", rx(rf"I(?:'ve|\s+have)?\s+{ADV}joined\s+{V}"), FACT, _employer_named),
    Rule("employer", rx(rf"I\s+{ADV}(?:start|begin)\s+(?:work\s+|working\s+|my\s+new\s+job\s+)?at\s+{V}"), FACT, _employer_named),
    Rule("employer", rx(rf"{AM}\s+{ADV}(?:self[- ]employed|my\s+own\s+boss)\b"), FACT, _self_employed),
    Rule("employer", rx(rf"I\s+{ADV}work\s+{_MANNER}in\s+{V}"), FACT, _work_in),
    Rule("occupation", rx(rf"I\s+{ADV}work\s+{_MANNER}as\s+{V}"), FACT, _works_as),
    Rule("occupation", rx(rf"(?:{AM}|{HAVE}\s+been)\s+{ADV}working\s+as\s+{V}"), FACT, _works_as),
    Rule("occupation", rx(rf"I\s+{ADV}teach\s+{V}"), FACT, _teach),
    Rule("occupation", rx(rf"{AM}\s+{ADV}(?:the\s+)?(?P<v>(?:head|director|vp|chief|lead)\s+(?:\w+\s+)?of\s+.+?)(?:\s+(?:at|for)\s+(?P<org>.+))?$"), FACT, _head_of),
    Rule("studies", rx(rf"(?:I\s+{ADV}study|{AM}\s+{ADV}studying)\s+{V}"), FACT, _study),
    Rule("studies", rx(rf"{AM}\s+{ADV}(?:doing|taking|studying\s+for)\s+{_DEGREES}\s+{V}"), FACT, _degree),
    Rule("age", rx(rf"{AM}\s+(?P<n>\d{{1,3}})(?:\s*(?:years?|yrs?)(?:\s+old)?|\s*(?:yo|y/o))?(?P<rest>.*)$"), PROFILE, _age),
    Rule("age", rx(rf"I\s+{ADV}turned\s+(?P<n>\d{{1,3}})\b(?P<rest>.*)$"), PROFILE, _age),
    Rule("name", rx(rf"my\s+(?:first\s+)?name(?:'s|\s+is)\s+{V}"), PROFILE, _name),
    Rule("name", rx(rf"(?:{AM}\s+called|call\s+me|I\s+go\s+by|(?:people|everyone|friends)\s+call\s+me)\s+{V}"), PROFILE, _name),
    Rule("allergy", rx(rf"{AM}\s+{ADV}{_SEVERITY}allergic\s+to\s+{V}"), FACT, _allergy),
    Rule("allergy", rx(rf"{_HAS}\s+(?:an?\s+)?(?:severe\s+|mild\s+|serious\s+|bad\s+|slight\s+)?(?P<v>[\w-]+(?:\s+[\w-]+)?)\s+allergy\b"), FACT, _allergy_noun),
    Rule("condition", rx(rf"{_HAS}\s+(?P<v>{CONDITIONS})\b"), FACT, _condition),
    Rule("condition", rx(rf"{AM}\s+{ADV}(?P<v>diabetic|asthmatic|epileptic|coeliac|celiac|dyslexic|autistic|anaemic|anemic|colou?r[- ]blind|deaf|hard\s+of\s+hearing|pregnant)\b"), FACT, _condition),
    Rule("diet", rx(rf"{AM}\s+{ADV}(?:an?\s+|strictly\s+|fully\s+|mostly\s+|mainly\s+)?(?P<v>{DIETS})\b"), PREFERENCE, _diet),
    Rule("diet", rx(rf"(?:{HAVE}|I)\s+{ADV}(?:gone|been|turned|became|become)\s+(?P<v>{DIETS})\b"), PREFERENCE, _diet),
    Rule("diet", rx(rf"I\s+{ADV}(?:eat|follow|keep|do)\s+(?:a\s+)?(?P<v>keto|paleo|plant[- ]based|low[- ]carb|gluten[- ]free|mediterranean|kosher|halal|vegan|vegetarian)(?:\s+diet)?\b"), PREFERENCE, _diet_follow),
    Rule("habit", rx(rf"I\s+{ADV}(?P<verb>smoke|vape)\b"), FACT, _smokes),
    Rule("habit", rx(rf"{AM}\s+{ADV}(?:a\s+)?(?:heavy\s+|social\s+|light\s+|regular\s+)?(?P<verb>smoker|vaper)\b"), FACT, _smokes),
    Rule("occupation", rx(rf"(?:{AM}|{HAVE}\s+been)\s+{ADV}(?P<v>(?:a|an)\s+.+)"), FACT, _is_a),
    Rule("name", rx(rf"{AM}\s+(?P<v>[a-z][a-z'-]+)\s*(?:,.*)?$"), PROFILE, _im_name),
]  # fmt: skip

__all__ = ["RULES"]
