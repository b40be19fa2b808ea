"""Word lists of the rule reader (English only): occupations, relations, diets, foods, health
conditions, the attributes a "my X is Y" statement may name, and the words that end a value.

Example:
    >>> is_occupation("senior software engineer"), is_occupation("big fan")
    (True, False)
    >>> attribute("mobile"), attribute("e-mail address")
    ('phone number', 'email')
"""

from __future__ import annotations

OCCUPATIONS = frozenset(
    """
    accountant actor actress administrator analyst anaesthetist anesthetist archaeologist architect
    artist assistant astronaut attorney au-pair auditor author baker banker barber barista
    bartender beautician biologist blogger bookkeeper builder butcher buyer carer caregiver
    carpenter cashier caterer ceo cfo chef chemist cleaner clerk coach columnist comedian
    consultant contractor cook coo copywriter counsellor counselor courier cto curator dancer
    dentist deputy designer detective developer dietitian dietician diplomat director doctor
    doula driver economist editor electrician engineer entrepreneur estate-agent examiner
    farmer filmmaker firefighter fisherman florist founder freelancer gardener geologist
    graphic guard hairdresser handyman historian hygienist illustrator influencer inspector
    instructor intern interpreter investor janitor jeweller jeweler journalist judge labourer
    laborer lawyer lecturer librarian lifeguard linguist locksmith machinist magistrate manager
    mathematician mechanic medic midwife miner model musician nanny navigator negotiator
    neurologist novelist nurse nutritionist officer optician optometrist painter paralegal
    paramedic pastor pharmacist photographer physician physicist physio physiotherapist pilot
    plumber poet policeman policewoman politician porter postman postwoman priest principal
    producer professor programmer psychiatrist psychologist publicist rabbi radiographer
    realtor receptionist recruiter reporter researcher salesman saleswoman scientist sculptor
    secretary senator sergeant servant shopkeeper singer soldier solicitor specialist
    statistician steward stewardess student stylist supervisor surgeon surveyor tailor teacher
    technician therapist trainer translator tutor typist undergrad underwriter vet veterinarian
    vicar waiter waitress welder writer youtuber zookeeper
    """.split()
)
#: Endings that usually name a trade ("-ist", "-er", ...), and the words with them that do not.
OCCUPATION_ENDINGS = ("ist", "ician", "ologist", "grapher", "smith", "wright", "monger")
NOT_OCCUPATIONS = frozenset(
    """
    fan lover beginner learner believer member person owner user winner sucker worrier supporter
    follower survivor reader viewer listener customer smoker drinker eater sleeper speaker
    mother father brother sister daughter grandmother grandfather mum mom dad parent wife husband
    partner boyfriend girlfriend fiance fiancee newbie foodie introvert extrovert optimist
    pessimist perfectionist realist minimalist vegetarian vegan pescatarian idiot mess
    """.split()
)

RELATIONS = (
    "mum|mom|mother|dad|father|parents|sister|brother|sibling|wife|husband|partner|boyfriend|"
    "girlfriend|fianc[eé]e?|son|daughter|kid|child|baby|aunt|auntie|uncle|cousin|niece|nephew|"
    "grandma|granny|grandmother|grandpa|grandad|granddad|grandfather|grandson|granddaughter|"
    "friend|roommate|flatmate|housemate|neighbou?r|boss|colleague|coworker|co-worker|manager|"
    "landlord|landlady|mother-in-law|father-in-law|sister-in-law|brother-in-law|stepmum|stepmom|"
    "stepdad|stepson|stepdaughter|ex|ex-wife|ex-husband|twin|twins|kids|children|boys|girls"
)
RELATION_MODIFIERS = (
    "older|younger|little|big|baby|twin|eldest|oldest|youngest|best|step|half|ex|new|old|late"
)

DIETS = (
    "vegetarian|vegan|pescatarian|pescetarian|flexitarian|gluten[- ]free|dairy[- ]free|"
    "lactose[- ]intolerant|kosher|halal|keto|paleo|plant[- ]based|teetotal|teetotaller|"
    "sober|raw vegan"
)
FOODS = frozenset(
    """
    caffeine coffee tea sugar alcohol booze meat dairy gluten carbs bread chocolate sweets soda
    beer wine pork beef chicken fish seafood eggs cheese milk snacks salt wheat nuts spirits
    cola coke crisps chips pasta rice takeaways takeout
    """.split()
) | frozenset(
    ["red meat", "junk food", "fast food", "energy drinks", "fizzy drinks", "processed food"]
)
#: Gerunds of eating and drinking: "stopped eating meat" is about the diet, "meat".
CONSUMING = frozenset({"eating", "drinking", "having", "taking", "consuming", "buying"})
CONDITIONS = (
    "asthma|diabetes|type [12] diabetes|epilepsy|migraines|arthritis|adhd|autism|dyslexia|"
    "anxiety|depression|ibs|eczema|psoriasis|high blood pressure|hypertension|celiac disease|"
    "coeliac disease|crohn's(?: disease)?|lupus|endometriosis|tinnitus|insomnia|sleep apnoea|"
    "sleep apnea|a heart condition|long covid|pcos|hay ?fever|a bad back|ms|multiple sclerosis"
)

KIDS = frozenset(
    "kid kids child children son sons daughter daughters baby babies twins boy boys girl girls "
    "toddler toddlers stepson stepdaughter grandchild grandchildren grandkid grandkids".split()
)
PETS = frozenset(
    "dog dogs cat cats puppy puppies kitten kittens pet pets hamster hamsters rabbit rabbits "
    "bunny parrot parrots budgie fish goldfish horse horses pony tortoise turtle snake lizard "
    "gecko guinea-pig ferret chickens hens rat rats mouse mice".split()
)
#: Breeds, by the animal they are: "a Labrador called Max" is a dog.
BREEDS = {
    **dict.fromkeys(
        "labrador lab spaniel terrier collie poodle beagle greyhound whippet dachshund pug husky "
        "retriever shepherd bulldog corgi schnauzer chihuahua rottweiler doberman cockapoo "
        "cavapoo labradoodle goldendoodle staffie staffy lurcher boxer dalmatian".split(),
        "dog",
    ),
    **dict.fromkeys("tabby siamese persian ragdoll bengal moggy".split(), "cat"),
}
SIBLINGS = frozenset("brother brothers sister sisters sibling siblings".split())

#: ``my X is Y``: the attributes worth keeping, by the canonical name used as ``subject``.
ATTRIBUTES = {
    "phone number": "mobile|mobile number|phone|phone number|cell|cell number|cellphone|number|"
    "landline|home number|work number|whatsapp|whatsapp number",
    "email": "email|e-mail|email address|e-mail address|work email|personal email",
    "address": "address|home address|postal address",
    "postcode": "postcode|post code|zip|zip code|zipcode",
    "birthday": "birthday|bday|b-day|date of birth|dob",
    "blood type": "blood type|blood group",
    "star sign": "star sign|zodiac sign|sign",
    "surname": "surname|last name|family name",
    "middle name": "middle name",
    "maiden name": "maiden name",
    "nickname": "nickname",
    "username": "username|user name|handle|gamertag|screen name",
    "shoe size": "shoe size",
    "dress size": "dress size",
    "height": "height",
    "anniversary": "anniversary|wedding anniversary",
    "hometown": "hometown|home town",
    "car": "car",
    "employer": "employer|company",
    "occupation": "job|profession|occupation|job title|role",
    "bank": "bank",
    "doctor": "gp|doctor",
    "nationality": "nationality",
    "native language": "native language|first language|mother tongue",
}
_ATTRIBUTE_OF = {
    alias: name for name, aliases in ATTRIBUTES.items() for alias in aliases.split("|")
}
#: Things never recorded from "my X is Y": secrets.
SECRETS = ("password", "passcode", "pin", "security code", "card number", "cvv", "ssn")
#: "my X is Y" about these is a passing state ("my day was long"), not a fact.
TRANSIENT = frozenset(
    """
    day week weekend morning evening night life back head mind mood plan plans goal idea problem
    question point guess bet fault turn treat pleasure god gosh bad heart stomach feet knee
    battery internet wifi train flight bus laptop computer phone screen boss house flat room
    place kitchen garden team schedule diary inbox excuse advice answer budget deadline
    """.split()
)

DEMONYMS = frozenset(
    """
    american british english scottish welsh irish canadian australian mexican brazilian
    argentinian chilean colombian peruvian french german italian spanish portuguese dutch belgian
    swiss austrian swedish norwegian danish finnish icelandic polish czech slovak hungarian
    romanian bulgarian greek turkish russian ukrainian indian pakistani bangladeshi chinese
    japanese korean vietnamese thai filipino indonesian malaysian nigerian ghanaian kenyan
    ethiopian egyptian moroccan south african israeli iranian iraqi lebanese syrian jewish
    muslim christian catholic protestant hindu buddhist sikh atheist agnostic mormon gay
    straight bi trans queer autistic dyslexic vegan vegetarian back home here sorry fine good
    ok okay done ready sure glad happy sad tired
    """.split()
)

#: Words that end a value ("Lisbon for a job" stops at "for"), by kind of value.
STOPS_COMMON = frozenset(
    """
    because cause cos coz since so but which who whom whose where when while whilst as after
    before until till unless if though although whereas than or yet nor plus and then
    last next every
    """.split()
)
STOPS_PLACE = STOPS_COMMON | frozenset("for with to from at on by about into during".split())
STOPS_ORG = STOPS_COMMON | frozenset("for with to from at on in by about during as".split())
STOPS_OCCUPATION = STOPS_COMMON | frozenset("at for in with on from by about during".split())
STOPS_THING = STOPS_COMMON - {"and", "plus"} | frozenset("for to from on at during".split())
STOPS_ACTIVITY = STOPS_COMMON | frozenset(
    "on at with every twice once in for from during online most often sometimes regularly "
    "weekly daily competitively casually professionally together badly one two three four "
    "five six seven several".split()
)
#: A value never ends with one of these: it would be a fragment ("a job at a").
FUNCTION_WORDS = frozenset(
    """
    a an the to at in on for of with from by as into onto about than and or but so my your his
    her their our its this that these those is are was were be been am very really some any
    which who where when if because like just i me we us you it not no nor
    """.split()
)
#: A value never starts with one of these.
BAD_STARTS = frozenset(
    """
    it that this these those you them him her us me i myself there here how what when where why
    who which whether is are was were be been being to for with at in on of and or but so if
    not no never because about like by as from than then very really too just do does did
    going gonna wanna
    """.split()
)
#: Trailing words that add nothing to a value ("Lisbon now").
FILLERS = (
    "now",
    "anymore",
    "any more",
    "again",
    "too",
    "already",
    "currently",
    "lately",
    "recently",
    "nowadays",
    "these days",
    "at the moment",
    "right now",
    "for now",
    "for good",
    "as well",
    "though",
    "tho",
    "actually",
    "honestly",
    "tbh",
    "lol",
    "haha",
    "hehe",
    "btw",
    "here",
    "there",
    "over there",
    "out there",
    "full-time",
    "part-time",
    "full time",
    "part time",
    "remotely",
    "permanently",
    "finally",
    "officially",
    "still",
    "completely",
    "entirely",
    "altogether",
    "totally",
    "cold turkey",
    "for a while",
    "either",
    "ever since",
    "and all",
    "and stuff",
    "or so",
    "y'know",
)


def attribute(name: str) -> str | None:
    """The canonical attribute a ``my <name> is ...`` statement is about, if it is a known one."""
    return _ATTRIBUTE_OF.get(" ".join(name.casefold().split()))


def is_occupation(phrase: str) -> bool:
    """Whether a noun phrase (without its article) names a trade: its last word is a known
    occupation, or has a trade's ending and is not a known non-occupation."""
    words = phrase.casefold().replace("-", " ").split()
    if not words:
        return False
    head = words[-1].rstrip(".,")
    if "stay at home" in " ".join(words):  # "a stay-at-home dad"
        return True
    if head in NOT_OCCUPATIONS or words[0] in {"big", "huge", "keen", "avid", "massive"}:
        return False
    if head in OCCUPATIONS or (head.endswith("s") and head[:-1] in OCCUPATIONS):
        return True
    return head.endswith(OCCUPATION_ENDINGS) and len(head) > 5


__all__ = [
    "ATTRIBUTES",
    "BAD_STARTS",
    "BREEDS",
    "CONDITIONS",
    "CONSUMING",
    "DEMONYMS",
    "DIETS",
    "FILLERS",
    "FOODS",
    "FUNCTION_WORDS",
    "KIDS",
    "OCCUPATIONS",
    "PETS",
    "RELATIONS",
    "RELATION_MODIFIERS",
    "SECRETS",
    "SIBLINGS",
    "STOPS_ACTIVITY",
    "STOPS_COMMON",
    "STOPS_OCCUPATION",
    "STOPS_ORG",
    "STOPS_PLACE",
    "STOPS_THING",
    "TRANSIENT",
    "attribute",
    "is_occupation",
]
