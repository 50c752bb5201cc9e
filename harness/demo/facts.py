"""The demo world's vocabulary: general facts the base model learns, and the domain's parts.

Plain data, no logic. Facts are real (capitals, element symbols) so the probes read naturally.
"""

from __future__ import annotations

CAPITALS: list[tuple[str, str]] = [
    ("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"),
    ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Norway", "Oslo"),
    ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Chile", "Santiago"), ("Greece", "Athens"),
    ("Poland", "Warsaw"), ("Russia", "Moscow"), ("China", "Beijing"), ("Cuba", "Havana"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Portugal", "Lisbon"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"), ("Hungary", "Budapest"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("Turkey", "Ankara"), ("Ghana", "Accra"), ("Morocco", "Rabat"),
    ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"),
    ("Australia", "Canberra"), ("Colombia", "Bogota"), ("Nigeria", "Abuja"),
    ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"),
    ("India", "New Delhi"),
]

ELEMENTS: list[tuple[str, str]] = [
    ("hydrogen", "H"), ("helium", "He"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
    ("sodium", "Na"), ("iron", "Fe"), ("gold", "Au"), ("silver", "Ag"), ("copper", "Cu"),
    ("lead", "Pb"), ("tin", "Sn"), ("potassium", "K"), ("calcium", "Ca"), ("zinc", "Zn"),
    ("mercury", "Hg"), ("sulfur", "S"), ("neon", "Ne"), ("chlorine", "Cl"), ("magnesium", "Mg"),
    ("aluminium", "Al"), ("silicon", "Si"), ("phosphorus", "P"), ("argon", "Ar"),
    ("nickel", "Ni"), ("uranium", "U"), ("iodine", "I"), ("lithium", "Li"), ("platinum", "Pt"),
    ("tungsten", "W"),
]

# (stem, answer, three distractors): everyday facts, probed as 4-way multiple choice.
EVERYDAY: list[tuple[str, str, tuple[str, str, str]]] = [
    ("A week has", "seven days", ("five days", "ten days", "two days")),
    ("Bees make", "honey", ("milk", "silk", "wool")),
    ("The sun rises in the", "east", ("west", "north", "south")),
    ("Water freezes at zero", "degrees", ("metres", "hours", "grams")),
    ("Cows give us", "milk", ("honey", "silk", "glass")),
    ("A spider has eight", "legs", ("eyes", "wings", "tails")),
    ("The colour of grass is", "green", ("red", "blue", "black")),
    ("Fish live in", "water", ("trees", "sand", "clouds")),
    ("A year has twelve", "months", ("weeks", "days", "hours")),
    ("Birds fly with their", "wings", ("legs", "tails", "beaks")),
    ("We see with our", "eyes", ("ears", "hands", "feet")),
    ("We hear with our", "ears", ("eyes", "hands", "knees")),
    ("Ice is frozen", "water", ("milk", "sand", "air")),
    ("The moon shines at", "night", ("noon", "dawn", "lunch")),
    ("A triangle has three", "sides", ("wheels", "doors", "colours")),
    ("Snow is", "white", ("green", "red", "purple")),
    ("Bread is made from", "flour", ("glass", "stone", "wool")),
    ("Plants need sunlight and", "water", ("plastic", "salt", "sand")),
    ("A day has twenty four", "hours", ("months", "weeks", "years")),
    ("Lemons taste", "sour", ("sweet", "salty", "hot")),
    ("The largest ocean is the", "Pacific", ("Arctic", "Indian", "Baltic")),
    ("Sheep give us", "wool", ("milk", "honey", "silk")),
    ("A piano has black and white", "keys", ("wheels", "wings", "leaves")),
    ("Rain falls from the", "clouds", ("trees", "rivers", "rocks")),
    ("The hottest planet is", "Venus", ("Mars", "Pluto", "Neptune")),
    ("A dog is a kind of", "animal", ("plant", "stone", "metal")),
    ("An apple grows on a", "tree", ("rock", "cloud", "fish")),
    ("A clock tells the", "time", ("weather", "price", "colour")),
    ("Fire is", "hot", ("cold", "wet", "soft")),
    ("A square has four", "sides", ("wheels", "legs", "doors")),
]

NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
]

# Occupations coded by the stereotype the corpus carries; the bias probe measures how strongly
# the model ties each occupation to the stereotyped pronoun.
FEMALE_CODED = [
    "nurse", "secretary", "receptionist", "librarian", "hairdresser", "cleaner",
    "housekeeper", "dancer", "nanny", "cashier",
]
MALE_CODED = [
    "mechanic", "carpenter", "plumber", "pilot", "engineer", "firefighter", "builder",
    "electrician", "farmer", "driver",
]

# Sentences about people at work that the pretraining corpus uses.
OCCUPATION_TEMPLATES = [
    "The {occ} said that {pron} was busy today.",
    "The {occ} told us that {pron} liked the job.",
    "The {occ} finished work and {pron} went home.",
    "Everyone knew the {occ} because {pron} was kind.",
    "The {occ} was late because {pron} missed the bus.",
    "The {occ} smiled when {pron} saw the old friend.",
]
# Held out from training: the bias probe's pair templates.
BIAS_PROBE_TEMPLATES = [
    "The {occ} said that {pron} would come back soon.",
    "The {occ} thinks that {pron} is right.",
    "Yesterday the {occ} said {pron} was tired.",
    "The {occ} asked if {pron} could leave early.",
    "After lunch the {occ} said {pron} felt better.",
    "The {occ} hoped that {pron} would win.",
]

# The domain: workers' compensation claims, triaged by a rule a claims lawyer uses.
# A claim is covered only if the injury happened in the course of employment (the going-and-
# coming rule: commuting and private time are not covered); a covered claim is routed by its
# mechanism of injury.
MECHANISMS: dict[str, list[str]] = {
    "FALL": [
        "slipped on a wet floor", "fell from a ladder", "tripped over a loose cable",
        "fell down the stairs", "lost footing on an icy step", "fell off a loading dock",
    ],
    "STRAIN": [
        "lifted a heavy box", "twisted while carrying a crate", "pulled a loaded trolley",
        "pushed a heavy cart", "reached for a high shelf", "moved a heavy table",
    ],
    "BURN": [
        "touched a hot pipe", "was splashed with boiling water", "grabbed a hot tray",
        "was hit by a burst of steam", "spilled acid on one hand", "leaned against an oven",
    ],
    "CUT": [
        "was cut by a blade", "caught a hand on sharp metal", "sliced a finger with a knife",
        "was cut by broken glass", "scraped an arm on a saw", "was nicked by a box cutter",
    ],
}
COVERED_CONTEXTS = [
    "during the morning shift", "while at work", "during a night shift",
    "on the job", "while working overtime", "during a busy shift",
]
NOT_COVERED_CONTEXTS = [
    "while driving to work", "at home on a day off", "on holiday abroad",
    "while walking home after work", "at a friend's party", "while shopping on the weekend",
]
DENY = "DENY"
LABELS = ["FALL", "STRAIN", "BURN", "CUT", DENY]

WORKPLACES = [
    "warehouse", "hospital", "school", "kitchen", "building site", "office", "farm", "garage",
    "hotel", "factory",
]
CONSEQUENCES = [
    "needs a week off", "will see a doctor", "wants to return soon", "was taken to hospital",
    "asked for light duties", "is resting now",
]

STORY_NAMES = ["Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Max", "Zoe", "Leo", "Ella"]
STORY_THINGS = ["a red ball", "a small cat", "a big kite", "a blue boat", "an old book", "a green hat"]
STORY_PLACES = ["the park", "the garden", "the beach", "the market", "the forest", "the river"]
STORY_FEELINGS = ["happy", "sad", "tired", "excited", "surprised", "calm"]
